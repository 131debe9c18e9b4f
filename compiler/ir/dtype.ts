/** Element types a tensor can hold. `bool` is stored as u32 0/1 on the GPU. */
export type DType = "f32" | "f16" | "i32" | "u32" | "bool";
export type FloatDType = "f32" | "f16";
export type IntDType = "i32" | "u32";

export const DTYPES: readonly DType[] = ["f32", "f16", "i32", "u32", "bool"];

export function isFloat(d: DType): d is FloatDType {
  return d === "f32" || d === "f16";
}

export function isInt(d: DType): d is IntDType {
  return d === "i32" || d === "u32";
}

/** Bytes per element in device memory (bool is widened to u32 so WGSL can address it). */
export function byteSize(d: DType): number {
  return d === "f16" ? 2 : 4;
}

/**
 * Rounds an f64 to what the dtype can hold. The reference interpreter keeps float math in f64 (it is
 * the oracle), so only integer and boolean results are normalized here.
 */
export function normalize(d: DType, x: number): number {
  switch (d) {
    case "f32":
    case "f16":
      return x;
    case "i32":
      return Number.isFinite(x) ? Math.trunc(x) | 0 : 0;
    case "u32":
      return Number.isFinite(x) ? Math.trunc(x) >>> 0 : 0;
    case "bool":
      return x !== 0 ? 1 : 0;
  }
}
