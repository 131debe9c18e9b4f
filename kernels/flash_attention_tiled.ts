import {
  attentionEntry,
  type AttentionIO,
  type AttentionShape,
  type AttentionVariant,
  checkWorkgroupMemory,
  EMPTY_ROW_LSE,
  indent,
  MASKED,
  maskTerm,
  P,
  range,
  tileClassOf,
} from "./flash_attention_common.ts";
import { literal } from "./wgsl.ts";

export type TiledVariant = Extract<AttentionVariant, { kind: "tiled" }>;

export interface TiledKernel {
  readonly wgsl: string;
  readonly workgroupSize: [number, number, number];
  readonly dispatch: [number, number, number];
}

export const B = `${P}b`;
export const H = `${P}h`;
export const f32 = (x: number) => literal(x, "f32");

/** Workgroup floats of each tiled kernel; rows of owned vectors and columns of transposed tiles are
 *  padded by one word so that a warp's strided accesses fall in distinct banks. */
export function tiledMemory(
  v: TiledVariant,
  d: number,
): { forward: number; backwardQ: number; backwardKV: number } {
  const { blockQ: bq, blockK: bk } = v;
  return {
    forward: bq * (d + 1) + d * (bk + 1) + bk * d + bq * bk + 2,
    backwardQ: 2 * bq * (d + 1) + 2 * d * (bk + 1) + bq * bk + 2,
    backwardKV: 2 * bk * (d + 1) + 2 * d * (bq + 1) + 2 * bq + 2 * bk * bq + 2,
  };
}

/**
 * Opens the loop over the other side's tiles: invocation 0 classifies the tile and every invocation
 * reads the class back through workgroupUniformLoad, so skipping a tile keeps barriers uniform even
 * when the layout data lives in a read_write buffer. Two slots, so the write for the next tile cannot
 * race with a slow invocation still reading this one.
 */
export function classifyTile(cls: string, counter: string, step: number): string[] {
  return [
    `let ${P}slot = (${counter} / ${step}u) & 1u;`,
    `if (${P}tid == 0u) { ${P}cls[${P}slot] = ${cls}; }`,
    `let ${P}class = workgroupUniformLoad(&${P}cls[${P}slot]);`,
    `if (${P}class == 0u) { continue; }`,
    `let ${P}always = ${P}class == 1u;`,
  ];
}

/** Row `r` and lane of this invocation; `lanes` invocations share each owned row. */
export function rowAndLane(lanes: number): string[] {
  return [`let ${P}r = ${P}tid / ${lanes}u;`, `let ${P}lane = ${P}tid % ${lanes}u;`];
}

/** A staging loop over `count` elements spread over the workgroup's `threads` invocations. */
export function stage(count: number, threads: number, body: string[]): string[] {
  return [
    `for (var ${P}e = ${P}tid; ${P}e < ${count}u; ${P}e += ${threads}u) {`,
    ...body.map((l) => `  ${l}`),
    `}`,
  ];
}

/**
 * Forward: the workgroup owns blockQ query rows (scaled q staged once, [blockQ, d + 1]); per key
 * tile it stages K^T [d, blockK + 1] and V [blockK, d]. Invocation (r, lane) computes the scores of
 * keys lane + t * lanes into the shared [blockQ, blockK] tile, then reads back its whole row for the
 * online softmax and accumulates output columns lane + c * lanes.
 */
export function tiledForward(
  shape: AttentionShape,
  io: AttentionIO,
  v: TiledVariant,
  scale: number,
): TiledKernel {
  const { t, s, d } = shape;
  const { blockQ: bq, blockK: bk, lanes } = v;
  checkWorkgroupMemory(tiledMemory(v, d).forward, "flash attention forward", v, d);
  const threads = bq * lanes;
  const entry = attentionEntry(shape, t, bq, threads);
  const scores = range(bk / lanes);
  const cols = range(d / lanes);
  const sc = (x: number) => `${P}s${x}`;
  const acc = (c: number) => `${P}acc${c}`;
  const key = (x: number) => `(${P}lane + ${x * lanes}u)`;
  const col = (c: number) => `(${P}lane + ${c * lanes}u)`;
  const keyRange = (x: number) => (s % bk === 0 ? "" : `${P}j0 + ${key(x)} < ${s}u`);

  const wgsl = `var<workgroup> ${P}qs: array<f32, ${bq * (d + 1)}>; // [blockQ, d + 1], scaled
var<workgroup> ${P}kt: array<f32, ${d * (bk + 1)}>; // [d, blockK + 1]
var<workgroup> ${P}vs: array<f32, ${bk * d}>; // [blockK, d]
var<workgroup> ${P}ps: array<f32, ${bq * bk}>; // [blockQ, blockK] scores
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
      ]),
      1,
    )
  }
${indent(cols.map((c) => `var ${acc(c)} = 0.0;`), 1)}
  var ${P}m = f32(${MASKED});
  var ${P}l = 0.0;
  for (var ${P}j0 = 0u; ${P}j0 < ${s}u; ${P}j0 += ${bk}u) {
${indent(classifyTile(tileClassOf(io, shape, v, `${P}i0`, `${P}j0`), `${P}j0`, bk), 2)}
${
    indent(
      stage(bk * d, threads, [
        `let ${P}n = ${P}e / ${d}u;`,
        `let ${P}x = ${P}e % ${d}u;`,
        `let ${P}jc = min(${P}j0 + ${P}n, ${s - 1}u);`,
        `${P}kt[${P}x * ${bk + 1}u + ${P}n] = ${io.loadK(B, H, `${P}jc`, `${P}x`)};`,
        `${P}vs[${P}e] = ${io.loadV(B, H, `${P}jc`, `${P}x`)};`,
      ]),
      2,
    )
  }
    workgroupBarrier();
${indent(scores.map((x) => `var ${sc(x)} = 0.0;`), 2)}
    for (var ${P}x = 0u; ${P}x < ${d}u; ${P}x++) {
      let ${P}qx = ${P}qs[${P}r * ${d + 1}u + ${P}x];
${indent(scores.map((x) => `${sc(x)} = fma(${P}qx, ${P}kt[${P}x * ${bk + 1}u + ${key(x)}], ${sc(x)});`), 3)}
    }
${
    indent(
      scores.map((x) => {
        const jc = `min(${P}j0 + ${key(x)}, ${s - 1}u)`;
        const ok = maskTerm(io, `${P}i`, jc, `${P}always`, keyRange(x));
        return `${P}ps[${P}r * ${bk}u + ${key(x)}] = select(f32(${MASKED}), ${sc(x)}, ${ok});`;
      }),
      2,
    )
  }
    workgroupBarrier();
    var ${P}mb = f32(${MASKED});
    for (var ${P}n = 0u; ${P}n < ${bk}u; ${P}n++) { ${P}mb = max(${P}mb, ${P}ps[${P}r * ${bk}u + ${P}n]); }
    let ${P}mn = max(${P}m, ${P}mb);
    let ${P}corr = exp(${P}m - ${P}mn);
    ${P}m = ${P}mn;
    ${P}l *= ${P}corr;
${indent(cols.map((c) => `${acc(c)} *= ${P}corr;`), 2)}
    for (var ${P}n = 0u; ${P}n < ${bk}u; ${P}n++) {
      let ${P}sn = ${P}ps[${P}r * ${bk}u + ${P}n];
      let ${P}p = select(0.0, exp(${P}sn - ${P}mn), ${P}sn > f32(${MASKED}));
      ${P}l += ${P}p;
${indent(cols.map((c) => `${acc(c)} = fma(${P}p, ${P}vs[${P}n * ${d}u + ${col(c)}], ${acc(c)});`), 3)}
    }
    workgroupBarrier();
  }
  if (${P}row < ${t}u) {
    let ${P}inv = select(0.0, 1.0 / ${P}l, ${P}l > 0.0);
${indent(cols.map((c) => io.storeO(B, H, `${P}row`, col(c), `${acc(c)} * ${P}inv`)), 2)}
    if (${P}lane == 0u) {
      ${io.storeLse(B, H, `${P}row`, `select(${f32(EMPTY_ROW_LSE)}, ${P}m + log(${P}l), ${P}l > 0.0)`)}
    }
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}
