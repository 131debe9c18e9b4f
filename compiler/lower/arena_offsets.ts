/**
 * Arena indices as lowering writes them: the tensor's offset first, as a marker that becomes a read
 * of the kernel's offsets uniform (kernels/arena_offsets.ts).
 */
import { arenaOffset } from "../../kernels/arena_offsets.ts";
import { sumIndex } from "../../kernels/wgsl.ts";

/**
 * The index `offset + flat` with the constant part of `flat` moved into the offset: a view into a
 * stored tensor (layer l's slice of a stacked KV cache) folds its start into the index as a
 * trailing constant (`(... + 1259520u)`, sumIndex puts it last), which would make each layer's
 * text differ again. The constant's last two bits stay in the index, so an offset that was a
 * multiple of 4 stays one (vec4 lanes, kernels/arena_offsets.ts `alignedVectorIndex`). u32
 * addition wraps, so the sum is the same either way.
 */
export function arenaIndex(offset: number, flat: string): string {
  const whole = /^(\d+)u$/.exec(flat);
  if (whole) return aligned(offset, Number(whole[1]), "0u");
  const tail = /^\((.*) \+ (\d+)u\)$/.exec(flat);
  if (tail && enclosesAll(flat)) return aligned(offset, Number(tail[2]), tail[1]!);
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

/** `offset + constant + rest` with the constant's multiple of 4 in the offset. */
function aligned(offset: number, constant: number, rest: string): string {
  const low = constant % 4;
  return sumIndex([arenaOffset(offset + constant - low), rest, `${low}u`]);
}
