import { type Node, node, type OpArgs } from "../ir/mod.ts";
import { rewriteBottomUp } from "./rewrite.ts";

/**
 * Joins tensors built piece by piece into one `concat`, so fusion can store them with one kernel
 * that computes only the piece each element falls in (concat lowers to a branch per piece):
 *   - concat(concat(a, b), c) along one axis      -> concat(a, b, c)
 *   - pad(a) + pad(b), zero pads that tile the sum -> concat(a, b)
 * The second is what autodiff leaves behind for the adjoint of slicing a tensor into parts (RoPE's
 * halves and quarters): each slice's cotangent is zero-padded back to full size and the pads are
 * summed, which evaluates every piece at every element. Returns the rewritten roots in order.
 */
export function joinPieces(roots: readonly Node[]): Node[] {
  return rewriteBottomUp(roots, joinRule);
}

function joinRule(n: Node): Node {
  if (n.op === "concat") {
    const axis = (n.arg as OpArgs["concat"]).axis;
    const flat = n.src.flatMap((s) =>
      s.op === "concat" && (s.arg as OpArgs["concat"]).axis === axis ? s.src : [s]
    );
    return flat.length === n.src.length ? n : node("concat", flat, { axis });
  }
  if (n.op === "add" && n.src[0]!.op === "pad" && n.src[1]!.op === "pad") {
    const [a, b] = [piece(n.src[0]!), piece(n.src[1]!)];
    if (!a || !b || a.axis !== b.axis) return n;
    const [first, second] = a.start <= b.start ? [a, b] : [b, a];
    const tiles = first.start === 0 && first.end === second.start && second.end === n.shape[a.axis];
    return tiles ? node("concat", [first.part, second.part], { axis: a.axis }) : n;
  }
  return n;
}

/** A zero pad along exactly one axis: the padded tensor and where it sits on that axis. */
function piece(p: Node): { part: Node; axis: number; start: number; end: number } | undefined {
  const { before, after, value } = p.arg as OpArgs["pad"];
  const axes = before.flatMap((b, i) => (b > 0 || after[i]! > 0 ? [i] : []));
  if (value !== 0 || axes.length !== 1) return undefined;
  const axis = axes[0]!;
  const part = p.src[0]!;
  return { part, axis, start: before[axis]!, end: before[axis]! + part.shape[axis]! };
}
