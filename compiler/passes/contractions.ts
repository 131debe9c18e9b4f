import { type Node, node, OPS, toposort, withSite } from "../ir/mod.ts";
import { rewriteBottomUp } from "./rewrite.ts";

/**
 * Merges contractions so that one kernel does the work of several (fewer dispatches, one pass over
 * the shared operand), using two identities of the matrix product:
 *   - siblings:  A·B1, A·B2 (same A)  -> slices of A·[B1 | B2]       (q, k, v or gate and up projections)
 *   - sums:      A1·B1 + A2·B2         -> [A1 | A2]·[B1 ; B2]          (a layer input's gradient
 *                                                                       summed over its readers)
 * The concatenations are views: the matmul reads each piece in place through a branch on the
 * index (see the concat lowering). A contraction is merged only when nothing else reads it (or, for
 * siblings, when none is a root and no operand depends on another sibling), so no work is repeated.
 * Returns the rewritten roots in order; run to a fixed point, so sums of three terms merge too.
 */
export function mergeContractions(roots: readonly Node[]): Node[] {
  let current = [...roots];
  // A round merges every group of siblings and one level of sums (a sum of n products takes n - 1).
  for (let round = 0; round < 16; round++) {
    const next = mergeSums(mergeSiblings(current));
    if (next.every((r, i) => r === current[i])) return next;
    current = next;
  }
  return current;
}

const isContraction = (n: Node) => OPS[n.op].kind === "contraction";
/** Reshapes pass the flat index through, so a sum of equally reshaped products is a reshaped sum. */
const isReshape = (n: Node) => n.op === "reshape";

function readerCounts(order: readonly Node[], roots: readonly Node[]): Map<number, number> {
  const count = new Map<number, number>();
  for (const n of order) for (const s of n.src) count.set(s.id, (count.get(s.id) ?? 0) + 1);
  for (const r of roots) count.set(r.id, (count.get(r.id) ?? 0) + 1);
  return count;
}

/** The product under a chain of single-reader reshapes, with the reshape target (or none). */
function product(n: Node, readers: Map<number, number>): Node | undefined {
  let m = n;
  while (isReshape(m)) {
    if (readers.get(m.id) !== 1) return undefined;
    m = m.src[0]!;
  }
  return isContraction(m) && readers.get(m.id) === 1 && m.src.length === 2 ? m : undefined;
}

function mergeSums(roots: readonly Node[]): Node[] {
  const readers = readerCounts(toposort(roots), roots);
  return rewriteBottomUp(roots, (n) => {
    if (n.op !== "add") return n;
    const [x, y] = [product(n.src[0]!, readers), product(n.src[1]!, readers)];
    if (!x || !y || x === y || x.shape.join() !== y.shape.join() || x.dtype !== y.dtype) return n;
    const r = x.shape.length;
    const [a1, b1, a2, b2] = [x.src[0]!, x.src[1]!, y.src[0]!, y.src[1]!];
    const merged = node(x.op, [
      node("concat", [a1, a2], { axis: r - 1 }),
      node("concat", [b1, b2], { axis: r - 2 }),
    ], null);
    return merged.shape.join() === n.shape.join() ? merged : node("reshape", [merged], { shape: n.shape });
  });
}

function mergeSiblings(roots: readonly Node[]): Node[] {
  const rootIds = new Set(roots.map((r) => r.id));
  const byOperand = new Map<number, Node[]>();
  for (const n of toposort(roots)) {
    if (!isContraction(n) || n.src.length !== 2 || rootIds.has(n.id)) continue;
    byOperand.set(n.src[0]!.id, [...(byOperand.get(n.src[0]!.id) ?? []), n]);
  }
  const groupOf = new Map<number, Node[]>();
  for (const group of byOperand.values()) {
    // Siblings must be independent: an operand computed from another sibling would make a cycle.
    const members = group.filter((m) => group.every((o) => o === m || !dependsOn(m.src[1]!, o)));
    if (members.length >= 2) { for (const m of members) groupOf.set(m.id, members); }
  }
  if (!groupOf.size) return [...roots];

  // Rebuild in an order where a sibling comes after every operand of its group (no operand depends
  // on a sibling, so this order exists), then each group's product is built once from rebuilt operands.
  const done = new Map<number, Node>();
  const joined = new Map<Node[], Node>();
  const depsOf = (n: Node) => groupOf.get(n.id)?.flatMap((m) => m.src) ?? n.src;
  const stack: [Node, boolean][] = roots.map((r) => [r, false]);
  stack.reverse();
  while (stack.length) {
    const [n, ready] = stack.pop()!;
    if (done.has(n.id)) continue;
    if (!ready) {
      stack.push(
        [n, true],
        ...depsOf(n).filter((s) => !done.has(s.id)).map((s): [Node, boolean] => [s, false]),
      );
      continue;
    }
    const group = groupOf.get(n.id);
    if (!group) {
      const src = n.src.map((s) => done.get(s.id)!);
      done.set(
        n.id,
        src.every((s, i) => s === n.src[i]) ? n : withSite(n.site, () => node(n.op, src, n.arg)),
      );
      continue;
    }
    const r = n.shape.length;
    let product = joined.get(group);
    if (!product) {
      const [first] = group;
      const weights = node("concat", group.map((m) => done.get(m.src[1]!.id)!), { axis: r - 1 });
      product = withSite(first!.site, () => node(first!.op, [done.get(first!.src[0]!.id)!, weights], null));
      joined.set(group, product);
    }
    const start = group.slice(0, group.indexOf(n)).reduce((s, m) => s + m.shape[r - 1]!, 0);
    const starts = n.shape.map((_, i) => (i === r - 1 ? start : 0));
    const ends = n.shape.map((d, i) => (i === r - 1 ? start + d : d));
    done.set(n.id, withSite(n.site, () => node("slice", [product!], { starts, ends })));
  }
  return roots.map((r) => done.get(r.id)!);
}

function dependsOn(from: Node, target: Node): boolean {
  const seen = new Set<number>();
  const stack = [from];
  while (stack.length) {
    const n = stack.pop()!;
    if (n === target) return true;
    if (seen.has(n.id)) continue;
    seen.add(n.id);
    stack.push(...n.src);
  }
  return false;
}
