import { type Node, node, toposort, withSite } from "../ir/mod.ts";

/**
 * Rebuilds the graph under `roots` bottom-up with `rule` applied to each node once its sources are
 * rewritten (a node whose sources are unchanged is kept as it is); the rule runs at the node's source
 * site, so nodes it makes point at the user's line. Returns the rewritten roots in order. The
 * IR rewrites before lowering (simplify, joinPieces, mergeContractions, the conv and reduction
 * rewrites) are each one rule over it.
 */
export function rewriteBottomUp(roots: readonly Node[], rule: (n: Node) => Node): Node[] {
  const done = new Map<number, Node>();
  for (const n of toposort(roots)) {
    const src = n.src.map((s) => done.get(s.id)!);
    const rebuilt = src.every((s, i) => s === n.src[i]) ? n : withSite(n.site, () => node(n.op, src, n.arg));
    done.set(n.id, withSite(n.site, () => rule(rebuilt)));
  }
  return roots.map((r) => done.get(r.id)!);
}
