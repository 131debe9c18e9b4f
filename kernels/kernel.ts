import { isHalfArena } from "./wgsl.ts";

/**
 * A compute kernel as plain data: WGSL text, what it binds, how it is dispatched, and what it
 * costs. Kernel generators return these; the compiler puts them in the plan; the runtime only
 * interprets them.
 *
 * Buffers are named arenas, each one `array<...>` in WGSL, addressed with element offsets (a
 * lowered kernel reads the offsets of its tensors from `offsets`, so that layers share one WGSL
 * text; compiler/lower/arena_offsets.ts):
 *   params, grads, adam_m, adam_v : array<f32>   (every parameter at its offset, one flat vector)
 *   act, act1, ...                : array<u32>   (inputs, activations, outputs; f32 via bitcast;
 *                                                  more arenas when one binding cannot hold them)
 *   half, half1, ...              : array<f16>   (f16 activation storage; loads widen to f32,
 *                                                  stores narrow; needs `enable f16;`)
 *   scalars                       : array<f32>   (per-step values the runtime writes: lr, ...)
 *   decay_mask                    : array<u32>   (one bit per parameter element)
 */
export interface KernelBinding {
  readonly binding: number;
  readonly buffer: string;
  readonly access: "read" | "read_write";
}

export interface Kernel {
  /** Short unique name, e.g. "matmul_17". */
  readonly name: string;
  /** What it computes, for `explain`. */
  readonly doc: string;
  /** The IR ops it covers (one for now; fused kernels list several). */
  readonly ops: readonly string[];
  readonly wgsl: string;
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroup counts. */
  readonly dispatch: readonly [number, number, number];
  readonly bindings: readonly KernelBinding[];
  /**
   * Arena word offsets the WGSL reads from a uniform `array<vec4<u32>, ceil(n / 4)>` at binding
   * `bindings.length` (offset k is element k & 3 of vector k >> 2); absent or empty: none bound.
   */
  readonly offsets?: readonly number[];
  readonly flops: number;
  /** Bytes read and written from memory, counting each tensor once. */
  readonly bytes: number;
}

/** WGSL declaration of one binding in group 0. */
export function bindingDecl(b: KernelBinding): string {
  return `@group(0) @binding(${b.binding}) var<storage, ${b.access}> ${b.buffer}: array<${elementType(b)}>;`;
}

/**
 * The same binding as an array of vec4s of its element type, for a kernel that loads four elements
 * at once; every access of it in that kernel must then index as wgsl.ts `element` does.
 */
export function vectorBindingDecl(b: KernelBinding): string {
  return `@group(0) @binding(${b.binding}) var<storage, ${b.access}> ${b.buffer}: array<vec4<${
    elementType(b)
  }>>;`;
}

function elementType(b: KernelBinding): string {
  return ELEMENT[b.buffer] ?? (/^act\d*$/.test(b.buffer) ? "u32" : isHalfArena(b.buffer) ? "f16" : "f32");
}

/** The directive a kernel binding a half arena must start with (WGSL `enable` comes first). */
export function enableDirective(bindings: readonly KernelBinding[]): string {
  return bindings.some((b) => isHalfArena(b.buffer)) ? "enable f16;\n\n" : "";
}

const ELEMENT: Record<string, string> = {
  act: "u32",
  decay_mask: "u32",
};

/** Splits `groups` workgroups over x and y so that neither exceeds the 65535 limit. */
export function grid(groups: number): [number, number, number] {
  if (groups <= 65535) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}
