import { type Node, OPS, size } from "../ir/mod.ts";
import { LOWERING } from "../lower/values.ts";

/**
 * Row fusion: a reduction over trailing axes and the one elementwise kernel that reads its result
 * broadcast back over those axes run as one kernel, one invocation per row: reduce the row, then
 * write the row of the reader. This is a norm's forward (sum of squares -> rsqrt -> x * r * g) and
 * its backward (row sum of dy * g * x -> dx), or a softmax's last pass, without storing the row
 * statistic or a second dispatch.
 *
 * `result` is the reduction kernel's stored node (the reduction itself, or the end of its epilogue
 * chain, not a root); it joins the kernel of `reader` when
 *   - `reader` is a stored elementwise kernel with no epilogue and no other row fusion,
 *   - every path from `reader` to `result` passes an `expand` to the reader's shape that repeats a
 *     value of the statistic's size along a trailing block of axes, reached from `result` through
 *     elementwise ops and reshapes (a norm's rsqrt(mean + eps) computed inline): element o * C + c
 *     of the reader (C the row length) reads row o's statistic, and elementwise ops and reshapes
 *     lead from the reader to each such expand, so it is read at the reader's own element,
 *   - when other kernels read `result` too, it is kept: the row kernel stores it as well, and the
 *     reader must not depend on any of them (they now wait for the row kernel).
 */
export interface RowFusion {
  /** The reduction kernel's stored node, now computed inside the reader's kernel. */
  readonly result: Node;
  /** The reduction node (result itself, or the accumulator of its epilogue chain). */
  readonly reduce: Node;
  /** Other kernels read `result` too: the row kernel also stores it (one word per row). */
  readonly keep: boolean;
}

export function fuseRows(
  order: readonly Node[],
  roots: ReadonlySet<number>,
  stored: Set<number>,
  epilogues: Map<number, Node>,
  consumers: ReadonlyMap<number, readonly Node[]>,
  onlyFlatPaths: (top: Node, target: Node, stored: ReadonlySet<number>) => boolean,
): Map<number, RowFusion> {
  const rows = new Map<number, RowFusion>();
  // Kernels whose inline expression reads n: stored consumers, looking through inline ones.
  const kernelReaders = (n: Node): Node[] =>
    (consumers.get(n.id) ?? []).flatMap((r) => (stored.has(r.id) ? [r] : kernelReaders(r)));
  for (const result of order) {
    if (!stored.has(result.id) || roots.has(result.id)) continue;
    const reduce = epilogues.get(result.id) ?? result;
    if (OPS[reduce.op].kind !== "reduce") continue;
    const direct = consumers.get(result.id) ?? [];
    const readers = [...new Set(direct.flatMap(kernelReaders))];
    // The first reader that takes the row: a stored elementwise kernel reading `result` only
    // through row broadcasts, each at its own flat index.
    const reader = readers.find((n) => {
      if (!stored.has(n.id) || rows.has(n.id) || epilogues.has(n.id)) return false;
      if (LOWERING[n.op].kernel !== "elementwise" || size(n.shape) % size(result.shape) !== 0) return false;
      const via = rowBroadcasts(result, consumers, stored).filter((e) =>
        e.shape.join() === n.shape.join() && (e.src[0] === result || onlyFlatPaths(e.src[0]!, result, stored))
      );
      // Other readers of a kept statistic then wait for the row kernel: none may feed it.
      return via.length > 0 && readsOnlyThrough(n, result, new Set(via.map((e) => e.id)), stored) &&
        via.every((e) => onlyFlatPaths(n, e, stored)) &&
        readers.every((o) => o === n || !reachesAvoiding(n, o, new Set(), new Set()));
    });
    if (!reader) continue;
    const keep = readers.length > 1;
    rows.set(reader.id, { result, reduce, keep });
    epilogues.delete(result.id);
    if (!keep) stored.delete(result.id);
  }
  return rows;
}

/**
 * The expands that repeat a value computed from `result` row by row along rows: reached through
 * reshapes and elementwise ops of the statistic's size (a norm's rsqrt(mean + eps) inline).
 */
function rowBroadcasts(
  result: Node,
  consumers: ReadonlyMap<number, readonly Node[]>,
  stored: ReadonlySet<number>,
): Node[] {
  const found: Node[] = [];
  const stack = [result];
  while (stack.length) {
    for (const c of consumers.get(stack.pop()!.id) ?? []) {
      if (stored.has(c.id)) continue;
      const rowwise = LOWERING[c.op].kernel === "elementwise" && c.op !== "gather" &&
        size(c.shape) === size(result.shape);
      if (c.op === "reshape" || rowwise) stack.push(c);
      else if (c.op === "expand" && broadcastsRows(c.src[0]!.shape, c.shape)) found.push(c);
    }
  }
  return found;
}

/** `to` repeats each element of `from` over a trailing block of axes (leading axes kept). */
function broadcastsRows(from: readonly number[], to: readonly number[]): boolean {
  if (from.length !== to.length) return false;
  const k = from.findIndex((d, i) => d !== to[i]);
  if (k < 0) return false;
  return from.every((d, i) => (i < k ? d === to[i] : d === 1));
}

/** Every inline path from `top` to `target` enters it through one of the nodes in `via`. */
function readsOnlyThrough(top: Node, target: Node, via: ReadonlySet<number>, stored: ReadonlySet<number>) {
  return !reachesAvoiding(top, target, via, stored);
}

/** Whether `top`'s inline expression reaches `target` without passing a node in `avoid`. */
function reachesAvoiding(top: Node, target: Node, avoid: ReadonlySet<number>, stored: ReadonlySet<number>) {
  const seen = new Set<number>();
  const stack = [...top.src];
  while (stack.length) {
    const n = stack.pop()!;
    if (n === target) return true;
    if (seen.has(n.id) || avoid.has(n.id) || stored.has(n.id)) continue;
    seen.add(n.id);
    stack.push(...n.src);
  }
  return false;
}
