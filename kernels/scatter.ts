import type { KernelMeta } from "./elementwise.ts";
import { grid, type Kernel, type KernelBinding } from "./kernel.ts";
import { libraryFor, literal, type ScalarType } from "./wgsl.ts";
import type { AdapterClass } from "./matmul.ts";

export interface ScatterIO {
  readonly declarations: string;
  readonly bindings: readonly KernelBinding[];
  /** i32 WGSL expression: the row that update `n` goes to. */
  readonly index: (n: string) => string;
  /** The value of update `n` at column `c`. */
  readonly update: (n: string, c: string) => string;
  readonly store: (flat: string, value: string) => string;
}

/**
 * Output rows one invocation sums (a block of consecutive rows, one column). Every invocation reads
 * every update's index, so a block of R rows reads the indices R times less often in all. On a GPU
 * the index reads are cached and parallel, so one row per invocation (the most invocations) is
 * kept. On lavapipe every storage read is a loop over the SIMD lanes, and the index reads were the
 * whole cost: the demo's token-embedding gradient (261 rows x 64 columns, 1312 updates) took 59 ms
 * against a 1.4 ms bound with one row; 64 rows (5 blocks, 320 invocations, enough for the cores)
 * cut the index reads 64x.
 */
export function scatterRowsPerThread(adapterClass: AdapterClass, rows: number): number {
  return adapterClass === "cpu" ? Math.min(rows, 64) : 1;
}

/**
 * table[row, c] = sum of updates[n, c] over n with index[n] == row. Each invocation owns a block of
 * `rowsPerThread` rows of one column and loops over all updates in order, adding each to its row's
 * accumulator: deterministic (no float atomics, so runs repeat bit for bit, and the sum order is
 * that of n whatever the block size) at O(rows * cols * n / rowsPerThread) index reads. An index
 * outside [0, rows) falls in no stored row: the update is dropped.
 */
export function scatterAddKernel(
  name: string,
  rows: number,
  cols: number,
  updates: number,
  type: ScalarType,
  io: ScatterIO,
  meta: KernelMeta,
  rowsPerThread = 1,
): Kernel {
  if (!Number.isInteger(rowsPerThread) || rowsPerThread < 1) {
    throw new Error(`scatterAddKernel ${name}: rowsPerThread must be an integer >= 1, got ${rowsPerThread}`);
  }
  const wg = 64;
  const block = Math.min(rowsPerThread, rows);
  const blocks = Math.ceil(rows / block);
  const count = blocks * cols;
  const dispatch = grid(Math.ceil(count / wg));
  const body = block === 1
    ? `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let flat = gid.x + gid.y * ${dispatch[0] * wg}u;
  if (flat >= ${count}u) { return; }
  let row = i32(flat / ${cols}u);
  let c = flat % ${cols}u;
  var acc = ${literal(0, type)};
  for (var n = 0u; n < ${updates}u; n++) {
    if (${io.index("n")} == row) { acc += ${io.update("n", "c")}; }
  }
  ${io.store("flat", "acc")}
}`
    : `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x + gid.y * ${dispatch[0] * wg}u;
  if (t >= ${count}u) { return; }
  let r0 = (t / ${cols}u) * ${block}u;
  let c = t % ${cols}u;
  var acc: array<${type}, ${block}>;
  for (var j = 0u; j < ${block}u; j++) { acc[j] = ${literal(0, type)}; }
  for (var n = 0u; n < ${updates}u; n++) {
    let d = ${io.index("n")} - i32(r0);
    if (d >= 0 && d < ${block}) { acc[d] += ${io.update("n", "c")}; }
  }
  for (var j = 0u; j < ${block}u; j++) {
    let row = r0 + j;
    if (row < ${rows}u) {
      let flat = row * ${cols}u + c;
      ${io.store("flat", "acc[j]")}
    }
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
