import {
  type AttentionBackwardIO,
  attentionEntry,
  type AttentionIO,
  type AttentionShape,
  type AttentionVariant,
  EMPTY_ROW_LSE,
  indent,
  MASKED,
  maskTerm,
  P,
  range,
  tileClassOf,
} from "./flash_attention_common.ts";
import { literal } from "./wgsl.ts";

type RowsVariant = Extract<AttentionVariant, { kind: "rows" }>;

/**
 * Barrier-free kernels for CPU adapters. On lavapipe a load whose address varies costs a per-lane
 * gather, far more than an fma, so each invocation owns `perThread` rows (interleaved: row r is
 * base + tid + r * threads) and every element loaded from the other side feeds all of them. Vectors
 * live in one WGSL variable per element, so nothing is indexed dynamically. Pairs are visited one
 * at a time; the forward pass rescales its accumulator only when a row's running max grows. The
 * loop over the other side stops at its last row, so an edge tile costs only its rows in range.
 */
interface RowKernel {
  readonly wgsl: string;
  readonly workgroupSize: [number, number, number];
  readonly dispatch: [number, number, number];
}

const B = `${P}b`;
const H = `${P}h`;
const f32 = (x: number) => literal(x, "f32");
/** `${P}name{r}_{x}` for every owned row r and element x, or `${P}name{x}` with no rows. */
const names = (name: string, d: number) => range(d).map((x) => `${P}${name}${x}`);
const perRow = (rows: number[], name: string, d: number) => rows.map((r) => names(`${name}${r}_`, d));

/** `count` owned rows of the workgroup's block: index, clamped index and whether it exists. */
function ownedRows(rows: number[], threads: number, base: string, limit: number): string[] {
  return rows.flatMap((r) => [
    `let ${P}own${r} = ${base} + ${P}tid + ${r * threads}u;`,
    `let ${P}ownc${r} = min(${P}own${r}, ${limit - 1}u);`,
  ]);
}

/** Statements leaving a . b in a new variable `name` (one chain: a nested expression could be too deep). */
const dot = (name: string, a: readonly string[], b: readonly string[]) => [
  `var ${name} = ${a[0]} * ${b[0]};`,
  ...a.slice(1).map((x, e) => `${name} = fma(${x}, ${b[e + 1]}, ${name});`),
];

/** o and lse: each invocation owns perThread query rows; keys are visited in blockK tiles. */
export function rowsForward(
  shape: AttentionShape,
  io: AttentionIO,
  v: RowsVariant,
  scale: number,
): RowKernel {
  const { t, s, d } = shape;
  const threads = v.blockQ / v.perThread;
  const entry = attentionEntry(shape, t, v.blockQ, threads);
  const rows = range(v.perThread);
  const xs = range(d);
  const [q, acc] = [perRow(rows, "q", d), perRow(rows, "acc", d)];
  const [k, vv] = [names("k", d), names("v", d)];
  const perRowStep = (r: number) => [
    ...dot(`${P}s${r}`, q[r]!, k),
    `if (${P}ok${r} && ${P}s${r} > ${P}m${r}) {`,
    `  let ${P}corr = exp(${P}m${r} - ${P}s${r});`,
    `  ${P}m${r} = ${P}s${r};`,
    `  ${P}l${r} *= ${P}corr;`,
    ...acc[r]!.map((a) => `  ${a} *= ${P}corr;`),
    `}`,
    `let ${P}p${r} = select(0.0, exp(${P}s${r} - ${P}m${r}), ${P}ok${r});`,
    `${P}l${r} += ${P}p${r};`,
  ];
  const wgsl = `${entry.header}
  let ${P}i0 = ${P}blk * ${v.blockQ}u;
${indent(ownedRows(rows, threads, `${P}i0`, t), 1)}
${
    indent(
      rows.flatMap((r) =>
        xs.map((x) => `let ${q[r]![x]} = ${io.loadQ(B, H, `${P}ownc${r}`, `${x}u`)} * ${f32(scale)};`)
      ),
      1,
    )
  }
${
    indent(
      rows.flatMap((
        r,
      ) => [
        ...acc[r]!.map((a) => `var ${a} = 0.0;`),
        `var ${P}m${r} = f32(${MASKED});`,
        `var ${P}l${r} = 0.0;`,
      ]),
      1,
    )
  }
  for (var ${P}j0 = 0u; ${P}j0 < ${s}u; ${P}j0 += ${v.blockK}u) {
    let ${P}cls = ${tileClassOf(io, shape, v, `${P}i0`, `${P}j0`)};
    if (${P}cls == 0u) { continue; }
    let ${P}always = ${P}cls == 1u;
    for (var ${P}j = ${P}j0; ${P}j < min(${P}j0 + ${v.blockK}u, ${s}u); ${P}j++) {
      let ${P}jc = min(${P}j, ${s - 1}u);
${
    indent(
      rows.map((r) => `let ${P}ok${r} = ${maskTerm(io, `${P}ownc${r}`, `${P}jc`, `${P}always`, "")};`),
      3,
    )
  }
      if (!(${rows.map((r) => `${P}ok${r}`).join(" || ")})) { continue; }
${indent(xs.map((x) => `let ${k[x]} = ${io.loadK(B, H, `${P}jc`, `${x}u`)};`), 3)}
${indent(rows.flatMap(perRowStep), 3)}
${indent(xs.map((x) => `let ${vv[x]} = ${io.loadV(B, H, `${P}jc`, `${x}u`)};`), 3)}
${indent(rows.flatMap((r) => xs.map((x) => `${acc[r]![x]} = fma(${P}p${r}, ${vv[x]}, ${acc[r]![x]});`)), 3)}
    }
  }
${
    indent(
      rows.flatMap((r) => [
        `if (${P}own${r} < ${t}u) {`,
        `  let ${P}inv = select(0.0, 1.0 / ${P}l${r}, ${P}l${r} > 0.0);`,
        ...xs.map((x) => `  ${io.storeO(B, H, `${P}own${r}`, `${x}u`, `${acc[r]![x]} * ${P}inv`)}`),
        `  ${
          io.storeLse(
            B,
            H,
            `${P}own${r}`,
            `select(${f32(EMPTY_ROW_LSE)}, ${P}m${r} + log(${P}l${r}), ${P}l${r} > 0.0)`,
          )
        }`,
        `}`,
      ]),
      1,
    )
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}

/** dQ: each invocation owns perThread query rows; keys are visited in blockK tiles. */
export function rowsBackwardQ(
  shape: AttentionShape,
  io: AttentionBackwardIO,
  v: RowsVariant,
  scale: number,
): RowKernel {
  const { t, s, d } = shape;
  const threads = v.blockQ / v.perThread;
  const entry = attentionEntry(shape, t, v.blockQ, threads);
  const rows = range(v.perThread);
  const xs = range(d);
  const [q, dO, dq] = [perRow(rows, "q", d), perRow(rows, "do", d), perRow(rows, "dq", d)];
  const [k, vv] = [names("k", d), names("v", d)];
  const i = (r: number) => `${P}ownc${r}`;
  const wgsl = `${entry.header}
  let ${P}i0 = ${P}blk * ${v.blockQ}u;
${indent(ownedRows(rows, threads, `${P}i0`, t), 1)}
${
    indent(
      rows.flatMap((r) => [
        ...xs.map((x) => `let ${q[r]![x]} = ${io.loadQ(B, H, i(r), `${x}u`)} * ${f32(scale)};`),
        ...xs.map((x) => `let ${dO[r]![x]} = ${io.loadDO(B, H, i(r), `${x}u`)};`),
        ...dq[r]!.map((a) => `var ${a} = 0.0;`),
        `let ${P}lse${r} = ${io.loadLse(B, H, i(r))};`,
        `let ${P}delta${r} = ${io.loadDelta(B, H, i(r))};`,
      ]),
      1,
    )
  }
  for (var ${P}j0 = 0u; ${P}j0 < ${s}u; ${P}j0 += ${v.blockK}u) {
    let ${P}cls = ${tileClassOf(io, shape, v, `${P}i0`, `${P}j0`)};
    if (${P}cls == 0u) { continue; }
    let ${P}always = ${P}cls == 1u;
    for (var ${P}j = ${P}j0; ${P}j < min(${P}j0 + ${v.blockK}u, ${s}u); ${P}j++) {
      let ${P}jc = min(${P}j, ${s - 1}u);
${indent(rows.map((r) => `let ${P}ok${r} = ${maskTerm(io, i(r), `${P}jc`, `${P}always`, "")};`), 3)}
      if (!(${rows.map((r) => `${P}ok${r}`).join(" || ")})) { continue; }
${indent(xs.map((x) => `let ${k[x]} = ${io.loadK(B, H, `${P}jc`, `${x}u`)};`), 3)}
${indent(xs.map((x) => `let ${vv[x]} = ${io.loadV(B, H, `${P}jc`, `${x}u`)};`), 3)}
${
    indent(
      rows.flatMap((r) => [
        ...dot(`${P}s${r}`, q[r]!, k),
        ...dot(`${P}dp${r}`, dO[r]!, vv),
        // A row without keys has lse = EMPTY_ROW_LSE and exp overflows; select drops it.
        `let ${P}ds${r} = select(0.0, exp(${P}s${r} - ${P}lse${r}) * (${P}dp${r} - ${P}delta${r}), ${P}ok${r});`,
        ...xs.map((x) => `${dq[r]![x]} = fma(${P}ds${r}, ${k[x]}, ${dq[r]![x]});`),
      ]),
      3,
    )
  }
    }
  }
${
    indent(
      rows.flatMap((r) => [
        `if (${P}own${r} < ${t}u) {`,
        ...xs.map((x) => `  ${io.storeDQ(B, H, `${P}own${r}`, `${x}u`, `${dq[r]![x]} * ${f32(scale)}`)}`),
        `}`,
      ]),
      1,
    )
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}

/** dK and dV: each invocation owns perThread key rows; queries are visited in blockQ tiles. */
export function rowsBackwardKV(
  shape: AttentionShape,
  io: AttentionBackwardIO,
  v: RowsVariant,
  scale: number,
): RowKernel {
  const { t, s, d } = shape;
  const threads = v.blockK / v.perThread;
  const entry = attentionEntry(shape, s, v.blockK, threads);
  const rows = range(v.perThread);
  const xs = range(d);
  const [k, vv, dk, dv] = [
    perRow(rows, "k", d),
    perRow(rows, "v", d),
    perRow(rows, "dk", d),
    perRow(rows, "dv", d),
  ];
  const [q, dO] = [names("q", d), names("do", d)];
  const j = (r: number) => `${P}ownc${r}`;
  const wgsl = `${entry.header}
  let ${P}j0 = ${P}blk * ${v.blockK}u;
${indent(ownedRows(rows, threads, `${P}j0`, s), 1)}
${
    indent(
      rows.flatMap((r) => [
        ...xs.map((x) => `let ${k[r]![x]} = ${io.loadK(B, H, j(r), `${x}u`)} * ${f32(scale)};`),
        ...xs.map((x) => `let ${vv[r]![x]} = ${io.loadV(B, H, j(r), `${x}u`)};`),
        ...[...dk[r]!, ...dv[r]!].map((a) => `var ${a} = 0.0;`),
      ]),
      1,
    )
  }
  for (var ${P}i0 = 0u; ${P}i0 < ${t}u; ${P}i0 += ${v.blockQ}u) {
    let ${P}cls = ${tileClassOf(io, shape, v, `${P}i0`, `${P}j0`)};
    if (${P}cls == 0u) { continue; }
    let ${P}always = ${P}cls == 1u;
    for (var ${P}i = ${P}i0; ${P}i < min(${P}i0 + ${v.blockQ}u, ${t}u); ${P}i++) {
      let ${P}ic = min(${P}i, ${t - 1}u);
${indent(rows.map((r) => `let ${P}ok${r} = ${maskTerm(io, `${P}ic`, j(r), `${P}always`, "")};`), 3)}
      if (!(${rows.map((r) => `${P}ok${r}`).join(" || ")})) { continue; }
${indent(xs.map((x) => `let ${q[x]} = ${io.loadQ(B, H, `${P}ic`, `${x}u`)};`), 3)}
${indent(xs.map((x) => `let ${dO[x]} = ${io.loadDO(B, H, `${P}ic`, `${x}u`)};`), 3)}
      let ${P}lse = ${io.loadLse(B, H, `${P}ic`)};
      let ${P}delta = ${io.loadDelta(B, H, `${P}ic`)};
${
    indent(
      rows.flatMap((r) => [
        ...dot(`${P}s${r}`, k[r]!, q),
        ...dot(`${P}dp${r}`, vv[r]!, dO),
        `let ${P}p${r} = select(0.0, exp(${P}s${r} - ${P}lse), ${P}ok${r});`,
        `let ${P}ds${r} = ${P}p${r} * (${P}dp${r} - ${P}delta);`,
        ...xs.map((x) => `${dv[r]![x]} = fma(${P}p${r}, ${dO[x]}, ${dv[r]![x]});`),
        ...xs.map((x) => `${dk[r]![x]} = fma(${P}ds${r}, ${q[x]}, ${dk[r]![x]});`),
      ]),
      3,
    )
  }
    }
  }
${
    indent(
      rows.flatMap((r) => [
        `if (${P}own${r} < ${s}u) {`,
        ...xs.map((x) => `  ${io.storeDK(B, H, `${P}own${r}`, `${x}u`, `${dk[r]![x]} * ${f32(scale)}`)}`),
        ...xs.map((x) => `  ${io.storeDV(B, H, `${P}own${r}`, `${x}u`, dv[r]![x]!)}`),
        `}`,
      ]),
      1,
    )
  }
}`;
  return { wgsl, workgroupSize: [threads, 1, 1], dispatch: entry.dispatch };
}
