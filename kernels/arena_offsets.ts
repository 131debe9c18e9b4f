/**
 * Where a lowered kernel reads or writes a tensor, the tensor's word offset in its arena is a
 * value of a small uniform array, not a literal in the WGSL. Why: a model's layers compute the
 * same shapes at different offsets, so with the offsets baked in every layer is its own shader,
 * and a pipeline costs its compile once per distinct shader (lavapipe JIT-compiles each at its
 * first dispatch, 1-2 s for a register-tiled matmul; drivers on real GPUs compile too). With the
 * offsets in a uniform the layers' kernels are one WGSL text, and the executor builds one
 * pipeline for all of them, each dispatch binding its own offsets (runtime/_gpu_objects.ts).
 *
 * Lowering writes each offset as a marker (`arenaOffset`, compiler/lower/arena_offsets.ts puts it
 * first in an index); `bindArenaOffsets` turns the markers of one kernel into reads of
 * `arena_offsets`, one per distinct value in order of first use, so two kernels that differ only in
 * where their tensors live come out as the same text.
 */

const MARKER = /⟨(\d+)⟩/g;

/** The uniform array's name in WGSL. */
export const ARENA_OFFSETS = "arena_offsets";

/** An arena word offset as lowering writes it into an index expression (a term for `sumIndex`). */
export function arenaOffset(words: number): string {
  if (!Number.isInteger(words) || words < 0 || words > 0xffffffff) {
    throw new RangeError(`arena offset must be a u32 word count, got ${words}`);
  }
  return `⟨${words}⟩`;
}

/**
 * `wgsl` with its offset markers read from `arena_offsets` at `binding` (a uniform array of
 * vec4<u32>), and the offsets in the order the array holds them; a kernel without markers is
 * returned as it is, with no offsets. The entry point copies the uniform into private variables
 * (`ao0`, `ao1`, ...) first and the body reads those: a uniform read at each use, inside a matmul's
 * k loop, cost lavapipe ~20% of a sampling step (it did not hoist them); a private variable
 * written once is a register.
 */
export function bindArenaOffsets(wgsl: string, binding: number): { wgsl: string; offsets: number[] } {
  const index = new Map<number, number>();
  const body = wgsl.replace(MARKER, (_, words: string) => {
    const value = Number(words);
    let k = index.get(value);
    if (k === undefined) index.set(value, k = index.size);
    return `ao${k}`;
  });
  if (index.size === 0) return { wgsl, offsets: [] };
  const names = [...index.values()];
  const decls = [
    `@group(0) @binding(${binding}) var<uniform> ${ARENA_OFFSETS}: array<vec4<u32>, ${
      Math.ceil(index.size / 4)
    }>;`,
    ...names.map((k) => `var<private> ao${k}: u32;`),
  ].join("\n");
  const copies = names.map((k) => `  ao${k} = ${ARENA_OFFSETS}[${k >> 2}].${"xyzw"[k & 3]};\n`).join("");
  const main = /\bfn main\([^{]*\{\n?/.exec(body);
  if (!main) throw new Error("internal: a kernel with arena offsets has no `fn main`");
  const at = main.index + main[0].length;
  const withCopies = `${body.slice(0, at)}${copies}${body.slice(at)}`;
  // `enable` directives must come first; the declarations go right after them.
  const enables = /^(?:enable [^;]*;\s*)*/.exec(withCopies)![0];
  return { wgsl: `${enables}${decls}\n${withCopies.slice(enables.length)}`, offsets: [...index.keys()] };
}

/**
 * An index `(offset + rest)` into a buffer declared as vec4s, as the vector and lane to address,
 * with the offset (a multiple of 4 words) counted in vec4s: `(offset + rest) >> 2` and `& 3` would
 * hide from the shader compiler that a tile's columns sit at known lanes (with the offset a
 * literal, it folded them), and every store and scalar load would pick its lane at run time.
 * Undefined when `index` does not start with an aligned offset.
 */
export function alignedVectorIndex(index: string): { vector: string; lane: string } | undefined {
  const m = /^\(⟨(\d+)⟩ \+ (.*)\)$/.exec(index);
  if (!m || Number(m[1]) % 4 !== 0 || !balanced(m[2]!)) return undefined;
  const rest = `(${m[2]})`;
  return { vector: `${arenaOffset(Number(m[1]) / 4)} + (${rest} >> 2u)`, lane: `${rest} & 3u` };
}

/** Whether no parenthesis of `expr` closes one it did not open. */
function balanced(expr: string): boolean {
  let depth = 0;
  for (const c of expr) {
    if (c === "(") depth++;
    else if (c === ")" && --depth < 0) return false;
  }
  return depth === 0;
}
