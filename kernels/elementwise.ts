import { grid, type Kernel, type KernelBinding } from "./kernel.ts";
import { libraryFor } from "./wgsl.ts";

/**
 * The loads and the store of a per-element kernel, as WGSL builders supplied by the compiler, so
 * the generator never sees the IR: `value` gets one u32 index expression per output axis.
 */
export interface ElementwiseIO {
  readonly declarations: string;
  readonly bindings: readonly KernelBinding[];
  readonly value: (idx: readonly string[]) => string;
  readonly store: (flat: string, value: string) => string;
}

export interface KernelMeta {
  readonly doc: string;
  readonly ops: readonly string[];
  readonly flops: number;
  readonly bytes: number;
}

export const ELEMENTWISE_WORKGROUP = 256;

/** Row-major index expressions `i0..i{r-1}` for `flat` over `shape`, as WGSL `let` lines. */
export function unflatten(
  flat: string,
  shape: readonly number[],
  prefix = "i",
): { lets: string; idx: string[] } {
  const lines: string[] = [];
  const idx: string[] = [];
  let stride = 1;
  const strides = shape.map(() => 0);
  for (let a = shape.length - 1; a >= 0; a--) {
    strides[a] = stride;
    stride *= shape[a]!;
  }
  shape.forEach((d, a) => {
    if (d === 1) return idx.push("0u");
    const name = `${prefix}${a}`;
    const div = strides[a] === 1 ? flat : `(${flat} / ${strides[a]}u)`;
    lines.push(`  let ${name} = ${a === 0 ? div : `${div} % ${d}u`};`);
    idx.push(name);
  });
  return { lets: lines.join("\n"), idx };
}

/** One invocation per output element: out[flat] = value(index of flat). */
export function elementwiseKernel(
  name: string,
  shape: readonly number[],
  io: ElementwiseIO,
  meta: KernelMeta,
): Kernel {
  const count = shape.reduce((p, d) => p * d, 1);
  const wg = ELEMENTWISE_WORKGROUP;
  const dispatch = grid(Math.ceil(count / wg));
  const { lets, idx } = unflatten("flat", shape);
  const body = `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let flat = gid.x + gid.y * ${dispatch[0] * wg}u;
  if (flat >= ${count}u) { return; }
${lets}
  ${io.store("flat", io.value(idx))}
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
