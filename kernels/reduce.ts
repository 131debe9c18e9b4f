import type { ElementwiseIO, KernelMeta } from "./elementwise.ts";
import { unflatten } from "./elementwise.ts";
import { grid, type Kernel } from "./kernel.ts";
import { libraryFor, literal, type ScalarType } from "./wgsl.ts";

/** The identity of max per type (literal(-Infinity, "i32") would be i32(0)). */
const LOWEST: Readonly<Record<ScalarType, string>> = {
  f32: literal(-Infinity, "f32"),
  i32: "i32(-2147483647 - 1)",
  u32: "0u",
  bool: "false",
};

/**
 * What both reduction kernels share: the output and reduced shapes, the identity and combine of
 * `op`, and `serial`: the WGSL that folds output `o`'s reduced elements into `acc` one by one
 * (after the `o` indices are unpacked).
 */
function reduction(
  inShape: readonly number[],
  axes: readonly number[],
  op: "sum" | "max",
  type: ScalarType,
  value: ElementwiseIO["value"],
) {
  const outShape = inShape.map((d, i) => (axes.includes(i) ? 1 : d));
  const redShape = inShape.map((d, i) => (axes.includes(i) ? d : 1));
  const outputs = outShape.reduce((p, d) => p * d, 1);
  const length = redShape.reduce((p, d) => p * d, 1);
  const init = op === "sum" ? literal(0, type) : LOWEST[type];
  const combine = (a: string, b: string) => (op === "sum" ? `${a} + ${b}` : `max(${a}, ${b})`);
  const out = unflatten("o", outShape, "o");
  const red = unflatten("r", redShape, "r");
  const idx = inShape.map((_, a) => (axes.includes(a) ? red.idx[a]! : out.idx[a]!));
  /** The loop over reduced element r from `from` in steps of `step`, folding into `acc`. */
  const loop = (from: string, step: string) =>
    `  var acc = ${init};
  for (var r = ${from}; r < ${length}u; r += ${step}) {
${red.lets.replaceAll("  let", "    let")}
    acc = ${combine("acc", value(idx))};
  }`;
  return { outputs, length, combine, outLets: out.lets, loop };
}

/** From this many outputs on, or below TREE_MIN_LENGTH per output, a reduction is serial (see below). */
export const TREE_MAX_OUTPUTS = 1024;
export const TREE_MIN_LENGTH = 256;

/**
 * Sum or max over `axes` of an input read through `io.value` (indices over the input shape).
 * Two shapes of kernel: many outputs get one invocation each with a serial loop; few outputs with
 * long reductions get one workgroup each and a shared-memory tree, so a GPU stays busy.
 */
export function reduceKernel(
  name: string,
  inShape: readonly number[],
  axes: readonly number[],
  op: "sum" | "max",
  type: ScalarType,
  io: ElementwiseIO,
  meta: KernelMeta,
): Kernel {
  const { outputs, length, combine, outLets, loop } = reduction(inShape, axes, op, type, io.value);
  const tree = outputs < TREE_MAX_OUTPUTS && length >= TREE_MIN_LENGTH;
  const wg = tree ? 64 : 256;
  let body: string;
  let dispatch: [number, number, number];
  if (!tree) {
    dispatch = grid(Math.ceil(outputs / wg));
    body = `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x + gid.y * ${dispatch[0] * wg}u;
  if (o >= ${outputs}u) { return; }
${outLets}
${loop("0u", "1u")}
  ${io.store("o", "acc")}
}`;
  } else {
    dispatch = grid(outputs);
    body = `var<workgroup> partial: array<${type}, ${wg}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let o = wid.x + wid.y * ${dispatch[0]}u;
${outLets}
${loop("lane", `${wg}u`)}
  partial[lane] = acc;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) { partial[lane] = ${combine("partial[lane]", "partial[lane + s]")}; }
    workgroupBarrier();
  }
  if (lane == 0u && o < ${outputs}u) { ${io.store("o", "partial[0]")} }
}`;
  }
  return {
    name,
    ...meta,
    wgsl: [io.declarations, libraryFor(body), body].filter(Boolean).join("\n\n"),
    workgroupSize: [wg, 1, 1],
    dispatch,
    bindings: io.bindings,
  };
}

/** The loads and stores of a row kernel (see `rowReduceKernel`), as WGSL builders. */
export interface RowIO extends Omit<ElementwiseIO, "store"> {
  /** The row statistic from the accumulator of row `row` (a norm's rsqrt(mean + eps), say). */
  readonly finish: (acc: string, row: string) => string;
  /** The statement writing element `flat` of the output, given the row statistic `stat`. */
  readonly store: (flat: string, stat: string) => string;
  /** The statement storing the statistic of row `row` too, when other kernels read it. */
  readonly keep?: (row: string, stat: string) => string;
}

/**
 * A reduction and the elementwise kernel that reads its result broadcast over a row, in one pass
 * per row: one invocation reduces its row (as `reduceKernel` does with one invocation per output),
 * then writes the `rowLength` output elements o * rowLength + c of its row. No statistic is stored.
 */
export function rowReduceKernel(
  name: string,
  inShape: readonly number[],
  axes: readonly number[],
  op: "sum" | "max",
  type: ScalarType,
  rowLength: number,
  io: RowIO,
  meta: KernelMeta,
): Kernel {
  const { outputs: rows, outLets, loop } = reduction(inShape, axes, op, type, io.value);
  const wg = 64;
  const dispatch = grid(Math.ceil(rows / wg));
  const body = `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x + gid.y * ${dispatch[0] * wg}u;
  if (o >= ${rows}u) { return; }
${outLets}
${loop("0u", "1u")}
  let stat = ${io.finish("acc", "o")};
  ${io.keep ? io.keep("o", "stat") : ""}
  for (var c = 0u; c < ${rowLength}u; c++) {
    ${io.store(`o * ${rowLength}u + c`, "stat")}
  }
}`;
  return {
    name,
    ...meta,
    wgsl: [io.declarations, libraryFor(body), body].filter(Boolean).join("\n\n"),
    workgroupSize: [wg, 1, 1],
    dispatch,
    bindings: io.bindings,
  };
}
