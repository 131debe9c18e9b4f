/**
 * WGSL text helpers shared by the generators: scalar types, literals, and arena loads/stores.
 * The `act` arena holds 32-bit words; values are bit-cast on the way in and out so that integer
 * patterns (such as -1 padding indices) survive untouched. The `half` arenas (f16 activation
 * storage) hold f16 elements: loads widen to f32 and stores narrow, so kernels compute in f32.
 * A kernel that reads a buffer four elements at a time declares it as an array of vec4s; every
 * access of that buffer in that kernel then goes through `element` / `loadVec4` (`vector` = true).
 */
import { alignedVectorIndex } from "./arena_offsets.ts";

export type ScalarType = "f32" | "i32" | "u32" | "bool";

/** The WGSL type a dtype computes in. f16 computes (and, until f16 storage lands, is stored) as f32. */
export function scalarType(dtype: string): ScalarType {
  switch (dtype) {
    case "f32":
    case "f16":
      return "f32";
    case "i32":
      return "i32";
    case "u32":
      return "u32";
    case "bool":
      return "bool";
    default:
      throw new Error(`no WGSL type for dtype ${dtype}`);
  }
}

/** A WGSL literal of `type` for a JS number, including infinities (WGSL has no inf literal). */
export function literal(value: number, type: ScalarType): string {
  switch (type) {
    case "f32": {
      if (Number.isNaN(value)) return "bitcast<f32>(0x7fc00000u)";
      if (value === Infinity) return "bitcast<f32>(0x7f800000u)";
      if (value === -Infinity) return "bitcast<f32>(0xff800000u)";
      const f = Math.fround(value);
      if (Math.abs(f) > 3.4028234663852886e38) {
        return f > 0 ? "bitcast<f32>(0x7f800000u)" : "bitcast<f32>(0xff800000u)";
      }
      const s = f.toPrecision(9);
      return `f32(${s.includes("e") || s.includes(".") ? s : s + ".0"})`;
    }
    case "i32":
      return `i32(${Math.trunc(value) | 0})`;
    case "u32":
      return `${Math.trunc(value) >>> 0}u`;
    case "bool":
      return value ? "true" : "false";
  }
}

/** Activation arenas (`act`, `act1`, ...) hold 32-bit words; every other buffer holds f32. */
export function isWordArena(buffer: string): boolean {
  return /^act\d*$/.test(buffer);
}

/** Half arenas (`half`, `half1`, ...) hold f16 activations (only floats are placed there). */
export function isHalfArena(buffer: string): boolean {
  return /^half\d*$/.test(buffer);
}

/**
 * Element `index` of `buffer` as a WGSL reference. A buffer declared as an array of vec4 (`vector`,
 * see bindingDecl) holds element i in component i % 4 of vector i / 4.
 */
export function element(buffer: string, index: string, vector = false): string {
  if (!vector) return `${buffer}[${index}]`;
  const aligned = alignedVectorIndex(index);
  if (aligned) return `${buffer}[${aligned.vector}][${aligned.lane}]`;
  return `${buffer}[(${index}) >> 2u][(${index}) & 3u]`;
}

/** A value of `type` read from arena word `index` of `buffer` (declared as vec4s when `vector`). */
export function loadWord(buffer: string, index: string, type: ScalarType, vector = false): string {
  const word = element(buffer, index, vector);
  if (isHalfArena(buffer)) return `f32(${word})`;
  if (!isWordArena(buffer)) return type === "f32" ? word : `${type}(${word})`;
  switch (type) {
    case "f32":
      return `bitcast<f32>(${word})`;
    case "i32":
      return `bitcast<i32>(${word})`;
    case "u32":
      return word;
    case "bool":
      return `(${word} != 0u)`;
  }
}

/**
 * The four floats at elements `index` .. `index` + 3 of a buffer declared as vec4s, as one
 * `vec4<f32>` load; `index` must be a multiple of 4.
 */
export function loadVec4(buffer: string, index: string): string {
  const v = `${buffer}[${alignedVectorIndex(index)?.vector ?? `(${index}) >> 2u`}]`;
  if (isHalfArena(buffer)) return `vec4<f32>(${v})`;
  return isWordArena(buffer) ? `bitcast<vec4<f32>>(${v})` : v;
}

/** A statement storing `value` of `type` at word `index` of `buffer` (declared as vec4s when `vector`). */
export function storeWord(
  buffer: string,
  index: string,
  value: string,
  type: ScalarType,
  vector = false,
): string {
  const word = element(buffer, index, vector);
  if (isHalfArena(buffer)) return `${word} = f16(${value});`;
  if (!isWordArena(buffer)) return `${word} = ${type === "f32" ? value : `f32(${value})`};`;
  switch (type) {
    case "f32":
    case "i32":
      return `${word} = bitcast<u32>(${value});`;
    case "u32":
      return `${word} = ${value};`;
    case "bool":
      return `${word} = select(0u, 1u, ${value});`;
  }
}

/**
 * Four f32 values stored at words `index` .. `index + 3` of `buffer` (declared as vec4s) in one
 * 16-byte write. The caller guarantees `index` is a multiple of 4, its arena offset included.
 */
export function storeVec4(buffer: string, index: string, values: readonly string[]): string {
  if (isHalfArena(buffer)) throw new Error(`internal: a vec4 store into the half arena ${buffer}`);
  const aligned = alignedVectorIndex(index);
  const at = aligned ? aligned.vector : `(${index}) >> 2u`;
  const v = `vec4<f32>(${values.join(", ")})`;
  return `${buffer}[${at}] = ${isWordArena(buffer) ? `bitcast<vec4<u32>>(${v})` : v};`;
}

/** Sum of `terms` as WGSL u32 arithmetic, folding constants and dropping zeros. */
export function sumIndex(terms: readonly string[]): string {
  let constant = 0;
  const parts: string[] = [];
  for (const t of terms) {
    const m = /^(\d+)u$/.exec(t);
    if (m) constant += Number(m[1]);
    else parts.push(t);
  }
  if (constant || parts.length === 0) parts.push(`${constant}u`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(" + ")})`;
}

/** `index * stride`, folded when either is trivial. */
export function scaleIndex(index: string, stride: number): string {
  if (stride === 0 || index === "0u") return "0u";
  const m = /^(\d+)u$/.exec(index);
  if (m) return `${Number(m[1]) * stride}u`;
  return stride === 1 ? index : `${index} * ${stride}u`;
}

/**
 * Device functions a kernel may call; the generator includes those whose name appears in its body.
 * erf: Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7, below f32 resolution of the result).
 * philox: Philox 4x32-10 with 16-bit-half products, the twin of compiler/philox.ts.
 * pow_f32: WGSL's pow is exp2(b * log2(a)), undefined for a < 0 and NaN for pow(0, 0); a negative
 *   base has a real power for an integer exponent (x^3 in tanh-GELU), negated when it is odd.
 */
export const LIBRARY: Readonly<Record<string, string>> = {
  erf_f32: `fn erf_f32(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}`,
  pow_f32: `fn pow_f32(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a >= 0.0 || trunc(b) != b) { return pow(a, b); }
  let m = pow(-a, b);
  return select(m, -m, fract(0.5 * b) != 0.0);
}`,
  mulhi32: `fn mulhi32(a: u32, b: u32) -> u32 {
  let ah = a >> 16u; let al = a & 0xffffu; let bh = b >> 16u; let bl = b & 0xffffu;
  let m1 = ah * bl; let m2 = al * bh;
  let mid = ((al * bl) >> 16u) + (m1 & 0xffffu) + (m2 & 0xffffu);
  return ah * bh + (m1 >> 16u) + (m2 >> 16u) + (mid >> 16u);
}`,
  philox: `fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter; var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi32(0xd2511f53u, c.x); let lo0 = 0xd2511f53u * c.x;
    let hi1 = mulhi32(0xcd9e8d57u, c.z); let lo1 = 0xcd9e8d57u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
  }
  return c;
}`,
  rand_uniform: `fn rand_uniform(seed: u32, offset: u32, stream: u32, i: u32) -> f32 {
  let w = philox(vec4<u32>(i, offset, stream, 0u), vec2<u32>(seed, 0u));
  return f32(w.x >> 8u) * (1.0 / 16777216.0);
}`,
  rand_normal: `fn rand_normal(seed: u32, offset: u32, stream: u32, i: u32) -> f32 {
  let w = philox(vec4<u32>(i, offset, stream, 0u), vec2<u32>(seed, 0u));
  let u1 = f32((w.x >> 8u) + 1u) * (1.0 / 16777216.0);
  let u2 = f32(w.y >> 8u) * (1.0 / 16777216.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}`,
};

const DEPENDS: Readonly<Record<string, readonly string[]>> = {
  philox: ["mulhi32"],
  rand_uniform: ["philox"],
  rand_normal: ["philox"],
};

/** The library functions `body` calls, dependencies first. */
export function libraryFor(body: string): string {
  const wanted = new Set<string>();
  const add = (name: string) => {
    if (wanted.has(name)) return;
    for (const d of DEPENDS[name] ?? []) add(d);
    wanted.add(name);
  };
  for (const name of Object.keys(LIBRARY)) if (new RegExp(`\\b${name}\\(`).test(body)) add(name);
  return [...wanted].map((n) => LIBRARY[n]).join("\n");
}
