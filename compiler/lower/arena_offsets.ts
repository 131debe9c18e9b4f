/**
 * Where a lowered kernel reads or writes a tensor, the tensor's word offset in its arena is a
 * value of a small uniform array, not a literal in the WGSL. Why: a model's layers compute the
 * same shapes at different offsets, so with the offsets baked in every layer is its own shader,
 * and a pipeline costs its compile once per distinct shader (lavapipe JIT-compiles each at its
 * first dispatch, 1-2 s for a register-tiled matmul; drivers on real GPUs compile too). With the
 * offsets in a uniform the layers' kernels are one WGSL text, and the executor builds one
 * pipeline for all of them, each dispatch binding its own offsets (runtime/_gpu_objects.ts).
 *
 * Lowering writes each offset as a marker (`arenaOffset`); `bindArenaOffsets` turns the markers of
 * one kernel into reads of `arena_offsets`, one per distinct value in order of first use, so two
 * kernels that differ only in where their tensors live come out as the same text.
 */

import { sumIndex } from "../../kernels/wgsl.ts";

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
 * The index `offset + flat` with the constant part of `flat` moved into the offset: a view into a
 * stored tensor (layer l's slice of a stacked KV cache) folds its start into the index as a
 * trailing constant (`(... + 1259520u)`, sumIndex puts it last), which would make each layer's
 * text differ again. u32 addition wraps, so the sum is the same either way.
 */
export function arenaIndex(offset: number, flat: string): string {
  const whole = /^(\d+)u$/.exec(flat);
  if (whole) return arenaOffset(offset + Number(whole[1]));
  const tail = /^\((.*) \+ (\d+)u\)$/.exec(flat);
  if (tail && enclosesAll(flat)) return sumIndex([arenaOffset(offset + Number(tail[2])), tail[1]!]);
  return sumIndex([arenaOffset(offset), flat]);
}

/** Whether the first parenthesis of `expr` closes at its last character. */
function enclosesAll(expr: string): boolean {
  let depth = 0;
  for (let i = 0; i < expr.length; i++) {
    if (expr[i] === "(") depth++;
    else if (expr[i] === ")" && --depth === 0) return i === expr.length - 1;
  }
  return false;
}

/**
 * `wgsl` with its offset markers read from `arena_offsets` at `binding` (a uniform array of
 * vec4<u32>), and the offsets in the order the array holds them; a kernel without markers is
 * returned as it is, with no offsets.
 */
export function bindArenaOffsets(wgsl: string, binding: number): { wgsl: string; offsets: number[] } {
  const index = new Map<number, number>();
  const body = wgsl.replace(MARKER, (_, words: string) => {
    const value = Number(words);
    let k = index.get(value);
    if (k === undefined) index.set(value, k = index.size);
    return `${ARENA_OFFSETS}[${k >> 2}].${"xyzw"[k & 3]}`;
  });
  if (index.size === 0) return { wgsl, offsets: [] };
  const decl = `@group(0) @binding(${binding}) var<uniform> ${ARENA_OFFSETS}: array<vec4<u32>, ${
    Math.ceil(index.size / 4)
  }>;`;
  // `enable` directives must come first; the declaration goes right after them.
  const enables = /^(?:enable [^;]*;\s*)*/.exec(body)![0];
  return { wgsl: `${enables}${decl}\n${body.slice(enables.length)}`, offsets: [...index.keys()] };
}

/** Whether `wgsl` still holds an offset marker (a kernel that skipped `bindArenaOffsets`). */
export function hasOffsetMarkers(wgsl: string): boolean {
  return /⟨\d+⟩/.test(wgsl);
}
