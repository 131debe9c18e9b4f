import {
  type AttentionBackwardIO,
  attentionEntry,
  type AttentionShape,
  checkWorkgroupMemory,
  indent,
  maskTerm,
  P,
  range,
  tileClassOf,
} from "./flash_attention_common.ts";
import {
  B,
  classifyTile,
  f32,
  H,
  rowAndLane,
  stage,
  type TiledKernel,
  tiledMemory,
  type TiledVariant,
} from "./flash_attention_tiled.ts";

/**
 * dQ: the workgroup owns blockQ query rows (scaled q and dO staged once, [blockQ, d + 1]); per key
 * tile it stages K^T and V^T ([d, blockK + 1]). Invocation (r, lane) computes p and dP for keys
 * lane + t * lanes, shares dS through a [blockQ, blockK] tile, and accumulates dQ columns
 * lane + c * lanes from the staged K^T.
 */
export function tiledBackwardQ(
  shape: AttentionShape,
  io: AttentionBackwardIO,
  v: TiledVariant,
  scale: number,
): TiledKernel {
  const { t, s, d } = shape;
  const { blockQ: bq, blockK: bk, lanes } = v;
  checkWorkgroupMemory(tiledMemory(v, d).backwardQ, "flash attention dQ", v, d);
  const threads = bq * lanes;
  const entry = attentionEntry(shape, t, bq, threads);
  const inner = range(bk / lanes);
  const cols = range(d / lanes);
  const key = (x: number) => `(${P}lane + ${x * lanes}u)`;
  const col = (c: number) => `(${P}lane + ${c * lanes}u)`;
  const keyRange = (x: number) => (s % bk === 0 ? "" : `${P}j0 + ${key(x)} < ${s}u`);

  const wgsl = `var<workgroup> ${P}qs: array<f32, ${bq * (d + 1)}>; // [blockQ, d + 1], scaled
var<workgroup> ${P}dos: array<f32, ${bq * (d + 1)}>; // [blockQ, d + 1]
var<workgroup> ${P}kt: array<f32, ${d * (bk + 1)}>; // [d, blockK + 1]
var<workgroup> ${P}vt: array<f32, ${d * (bk + 1)}>; // [d, blockK + 1]
var<workgroup> ${P}dss: array<f32, ${bq * bk}>; // [blockQ, blockK]
var<workgroup> ${P}cls: array<u32, 2>;

${entry.header}
${indent(rowAndLane(lanes), 1)}
  let ${P}i0 = ${P}blk * ${bq}u;
  let ${P}row = ${P}i0 + ${P}r;
  let ${P}i = min(${P}row, ${t - 1}u);
${
    indent(
      stage(bq * d, threads, [
        `let ${P}ic = min(${P}i0 + ${P}e / ${d}u, ${t - 1}u);`,
        `${P}qs[${P}e + ${P}e / ${d}u] = ${io.loadQ(B, H, `${P}ic`, `${P}e % ${d}u`)} * ${f32(scale)};`,
        `${P}dos[${P}e + ${P}e / ${d}u] = ${io.loadDO(B, H, `${P}ic`, `${P}e % ${d}u`)};`,
      ]),
      1,
    )
  }
  let ${P}lse = ${io.loadLse(B, H, `${P}i`)};
  let ${P}delta = ${io.loadDelta(B, H, `${P}i`)};
${indent(cols.map((c) => `var ${P}dq${c} = 0.0;`), 1)}
  for (var ${P}j0 = 0u; ${P}j0 < ${s}u; ${P}j0 += ${bk}u) {
${indent(classifyTile(tileClassOf(io, shape, v, `${P}i0`, `${P}j0`), `${P}j0`, bk), 2)}
${
    indent(
      stage(bk * d, threads, [
        `let ${P}n = ${P}e / ${d}u;`,
        `let ${P}x = ${P}e % ${d}u;`,
        `let ${P}jc = min(${P}j0 + ${P}n, ${s - 1}u);`,
        `${P}kt[${P}x * ${bk + 1}u + ${P}n] = ${io.loadK(B, H, `${P}jc`, `${P}x`)};`,
        `${P}vt[${P}x * ${bk + 1}u + ${P}n] = ${io.loadV(B, H, `${P}jc`, `${P}x`)};`,
      ]),
      2,
    )
  }
    workgroupBarrier();
${indent(inner.flatMap((x) => [`var ${P}s${x} = 0.0;`, `var ${P}dp${x} = 0.0;`]), 2)}
    for (var ${P}x = 0u; ${P}x < ${d}u; ${P}x++) {
      let ${P}qx = ${P}qs[${P}r * ${d + 1}u + ${P}x];
      let ${P}ox = ${P}dos[${P}r * ${d + 1}u + ${P}x];
${
    indent(
      inner.flatMap((x) => [
        `${P}s${x} = fma(${P}qx, ${P}kt[${P}x * ${bk + 1}u + ${key(x)}], ${P}s${x});`,
        `${P}dp${x} = fma(${P}ox, ${P}vt[${P}x * ${bk + 1}u + ${key(x)}], ${P}dp${x});`,
      ]),
      3,
    )
  }
    }
${
    indent(
      inner.map((x) => {
        const ok = maskTerm(io, `${P}i`, `min(${P}j0 + ${key(x)}, ${s - 1}u)`, `${P}always`, keyRange(x));
        const ds = `exp(${P}s${x} - ${P}lse) * (${P}dp${x} - ${P}delta)`;
        return `${P}dss[${P}r * ${bk}u + ${key(x)}] = select(0.0, ${ds}, ${ok});`;
      }),
      2,
    )
  }
    workgroupBarrier();
    for (var ${P}n = 0u; ${P}n < ${bk}u; ${P}n++) {
      let ${P}ds = ${P}dss[${P}r * ${bk}u + ${P}n];
${indent(cols.map((c) => `${P}dq${c} = fma(${P}ds, ${P}kt[${col(c)} * ${bk + 1}u + ${P}n], ${P}dq${c});`), 3)}
    }
    workgroupBarrier();
  }
  if (${P}row < ${t}u) {
${indent(cols.map((c) => io.storeDQ(B, H, `${P}row`, col(c), `${P}dq${c} * ${f32(scale)}`)), 2)}
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}

/**
 * dK and dV: the workgroup owns blockK key rows (scaled k and v staged once, [blockK, d + 1]); per
 * query tile it stages Q^T and dO^T ([d, blockQ + 1]) with the tile's lse and delta. Invocation
 * (r, lane) computes p and dS for queries lane + t * lanes, shares them through [blockK, blockQ]
 * tiles, and accumulates dK and dV columns lane + c * lanes.
 */
export function tiledBackwardKV(
  shape: AttentionShape,
  io: AttentionBackwardIO,
  v: TiledVariant,
  scale: number,
): TiledKernel {
  const { t, s, d } = shape;
  const { blockQ: bq, blockK: bk, lanes } = v;
  checkWorkgroupMemory(tiledMemory(v, d).backwardKV, "flash attention dK/dV", v, d);
  const threads = bk * lanes;
  const entry = attentionEntry(shape, s, bk, threads);
  const inner = range(bq / lanes);
  const cols = range(d / lanes);
  const query = (x: number) => `(${P}lane + ${x * lanes}u)`;
  const col = (c: number) => `(${P}lane + ${c * lanes}u)`;
  const queryRange = (x: number) => (t % bq === 0 ? "" : `${P}i0 + ${query(x)} < ${t}u`);

  const wgsl = `var<workgroup> ${P}ks: array<f32, ${bk * (d + 1)}>; // [blockK, d + 1], scaled
var<workgroup> ${P}vs: array<f32, ${bk * (d + 1)}>; // [blockK, d + 1]
var<workgroup> ${P}qt: array<f32, ${d * (bq + 1)}>; // [d, blockQ + 1]
var<workgroup> ${P}dot: array<f32, ${d * (bq + 1)}>; // [d, blockQ + 1]
var<workgroup> ${P}lses: array<f32, ${bq}>;
var<workgroup> ${P}deltas: array<f32, ${bq}>;
var<workgroup> ${P}ps: array<f32, ${bk * bq}>; // [blockK, blockQ]
var<workgroup> ${P}dss: array<f32, ${bk * bq}>; // [blockK, blockQ]
var<workgroup> ${P}cls: array<u32, 2>;

${entry.header}
${indent(rowAndLane(lanes), 1)}
  let ${P}j0 = ${P}blk * ${bk}u;
  let ${P}col = ${P}j0 + ${P}r;
  let ${P}j = min(${P}col, ${s - 1}u);
${
    indent(
      stage(bk * d, threads, [
        `let ${P}jc = min(${P}j0 + ${P}e / ${d}u, ${s - 1}u);`,
        `${P}ks[${P}e + ${P}e / ${d}u] = ${io.loadK(B, H, `${P}jc`, `${P}e % ${d}u`)} * ${f32(scale)};`,
        `${P}vs[${P}e + ${P}e / ${d}u] = ${io.loadV(B, H, `${P}jc`, `${P}e % ${d}u`)};`,
      ]),
      1,
    )
  }
${indent(cols.flatMap((c) => [`var ${P}dk${c} = 0.0;`, `var ${P}dv${c} = 0.0;`]), 1)}
  for (var ${P}i0 = 0u; ${P}i0 < ${t}u; ${P}i0 += ${bq}u) {
${indent(classifyTile(tileClassOf(io, shape, v, `${P}i0`, `${P}j0`), `${P}i0`, bq), 2)}
${
    indent(
      stage(bq * d, threads, [
        `let ${P}n = ${P}e / ${d}u;`,
        `let ${P}x = ${P}e % ${d}u;`,
        `let ${P}ic = min(${P}i0 + ${P}n, ${t - 1}u);`,
        `${P}qt[${P}x * ${bq + 1}u + ${P}n] = ${io.loadQ(B, H, `${P}ic`, `${P}x`)};`,
        `${P}dot[${P}x * ${bq + 1}u + ${P}n] = ${io.loadDO(B, H, `${P}ic`, `${P}x`)};`,
        `if (${P}x == 0u) {`,
        `  ${P}lses[${P}n] = ${io.loadLse(B, H, `${P}ic`)};`,
        `  ${P}deltas[${P}n] = ${io.loadDelta(B, H, `${P}ic`)};`,
        `}`,
      ]),
      2,
    )
  }
    workgroupBarrier();
${indent(inner.flatMap((x) => [`var ${P}s${x} = 0.0;`, `var ${P}dp${x} = 0.0;`]), 2)}
    for (var ${P}x = 0u; ${P}x < ${d}u; ${P}x++) {
      let ${P}kx = ${P}ks[${P}r * ${d + 1}u + ${P}x];
      let ${P}vx = ${P}vs[${P}r * ${d + 1}u + ${P}x];
${
    indent(
      inner.flatMap((x) => [
        `${P}s${x} = fma(${P}kx, ${P}qt[${P}x * ${bq + 1}u + ${query(x)}], ${P}s${x});`,
        `${P}dp${x} = fma(${P}vx, ${P}dot[${P}x * ${bq + 1}u + ${query(x)}], ${P}dp${x});`,
      ]),
      3,
    )
  }
    }
${
    indent(
      inner.flatMap((x) => {
        const n = query(x);
        const ok = maskTerm(io, `min(${P}i0 + ${n}, ${t - 1}u)`, `${P}j`, `${P}always`, queryRange(x));
        return [
          `let ${P}p${x} = select(0.0, exp(${P}s${x} - ${P}lses[${n}]), ${ok});`,
          `${P}ps[${P}r * ${bq}u + ${n}] = ${P}p${x};`,
          `${P}dss[${P}r * ${bq}u + ${n}] = ${P}p${x} * (${P}dp${x} - ${P}deltas[${n}]);`,
        ];
      }),
      2,
    )
  }
    workgroupBarrier();
    for (var ${P}n = 0u; ${P}n < ${bq}u; ${P}n++) {
      let ${P}p = ${P}ps[${P}r * ${bq}u + ${P}n];
      let ${P}ds = ${P}dss[${P}r * ${bq}u + ${P}n];
${
    indent(
      cols.flatMap((c) => [
        `${P}dv${c} = fma(${P}p, ${P}dot[${col(c)} * ${bq + 1}u + ${P}n], ${P}dv${c});`,
        `${P}dk${c} = fma(${P}ds, ${P}qt[${col(c)} * ${bq + 1}u + ${P}n], ${P}dk${c});`,
      ]),
      3,
    )
  }
    }
    workgroupBarrier();
  }
  if (${P}col < ${s}u) {
${indent(cols.map((c) => io.storeDK(B, H, `${P}col`, col(c), `${P}dk${c} * ${f32(scale)}`)), 2)}
${indent(cols.map((c) => io.storeDV(B, H, `${P}col`, col(c), `${P}dv${c}`)), 2)}
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}
