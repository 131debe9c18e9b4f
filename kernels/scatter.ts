import type { KernelMeta } from "./elementwise.ts";
import { grid, type Kernel, type KernelBinding } from "./kernel.ts";
import { libraryFor, literal, type ScalarType } from "./wgsl.ts";

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
 * table[row, c] = sum of updates[n, c] over n with index[n] == row. Each output element loops over
 * all updates: deterministic (no float atomics, so runs repeat bit for bit) at O(rows * cols * n).
 */
export function scatterAddKernel(
  name: string,
  rows: number,
  cols: number,
  updates: number,
  type: ScalarType,
  io: ScatterIO,
  meta: KernelMeta,
): Kernel {
  const wg = 64;
  const count = rows * cols;
  const dispatch = grid(Math.ceil(count / wg));
  const body = `@compute @workgroup_size(${wg})
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
