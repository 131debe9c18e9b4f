import { type Node, OPS, size } from "../ir/mod.ts";
import { LOWERING } from "../lower/values.ts";
import { fuseRows, type RowFusion } from "./rows.ts";

/**
 * Which nodes get memory of their own. Everything else is computed inline by the kernel that reads
 * it, through the same per-op value rules, so fusion is this one decision per node.
 *
 * First lowering (`fuse: false`): every op with a kernel kind is stored.
 * Fused: reductions, matmuls, scatters and elementwise roots are always stored, and so are a conv's
 * weights read through a concat (see below); an elementwise node is inlined into its readers unless
 * the recompute-versus-store rule says otherwise:
 *   - read by 2+ kernels and costing MULTI_USE_COST or more ops inline  -> store (else recompute)
 *   - feeding a matmul or attention operand (through any views) and costing more than
 *     PROLOGUE_COST -> store (each operand element is loaded many times there)
 *   - its inline expression would exceed MAX_INLINE_COST ops -> store (bounds kernel size)
 *   - read by an elementwise kernel at least EXPANSION times its size (through a gather or a
 *     broadcast) and costing MULTI_USE_COST or more ops inline -> store (each read recomputes it)
 * A matmul or reduction whose single reader chain is flat elementwise work (bias, activation,
 * residual, scale; a norm's rsqrt(mean + eps)) runs that chain as its epilogue: the matmul or
 * reduction itself is then not stored (see `epilogues`). A piece of a concat (its only readers are
 * joins) is not stored for an operand on its own: the join is stored whole, by one kernel that
 * computes only the piece each element falls in. Last, a row reduction joins the elementwise kernel
 * that reads it broadcast along rows (`rows`, passes/rows.ts).
 *
 * The graph rewrites before this choice (passes/contractions.ts, passes/pieces.ts) are run by
 * lowerEntry, which verifies the graph after them.
 */
export interface Materialization {
  readonly stored: ReadonlySet<number>;
  /** Stored elementwise node id -> the matmul or reduction computed in its kernel, the epilogue's input. */
  readonly epilogues: ReadonlyMap<number, Node>;
  /** Stored elementwise node id -> the row reduction it computes first in its own kernel (passes/rows.ts). */
  readonly rows: ReadonlyMap<number, RowFusion>;
  /**
   * Stored matmul id -> the column slices it is read through (merged siblings, passes/contractions.ts):
   * the kernel stores each slice as a tensor of its own, so each lives only as long as its readers.
   */
  readonly splits: ReadonlyMap<number, readonly Node[]>;
}

export const MULTI_USE_COST = 3;
/**
 * Matmul operands take no inline elementwise work, only views: a register-tiled matmul loads each
 * operand element n / tn times, and on lavapipe every load is already the bottleneck, so even a
 * two-op prologue (a norm's scale) cost more than the pass it saved on T1.
 */
export const PROLOGUE_COST = 0;
export const MAX_INLINE_COST = 24;
/**
 * Reads per element above which an inlined node is stored instead. The KV cache's merge gathers the
 * window's rotated keys into [B, S, D] (spec/transfusion/cached.ts): inlined, RoPE (exp, cos, sin,
 * the layout's gathers) ran for every cache element, 41x the window's size in a decode step, and
 * the six K merges took 11.1 ms each at 80 rows against 3.6 for the V merges that read stored values.
 */
export const EXPANSION = 2;
/** What a random draw counts as in the inline budget (it is computed wherever it is read). */
export const RANDOM_COST = 8;
/**
 * Attention operands get the matmul budget. Measured on T1 (lavapipe): inlining RoPE (16 ops with
 * cos, sin and exp, all four quarter-branches of the 2D rotation evaluated) into the flash kernels'
 * K loads, which run once per query row, made the fused step 2x slower than the unfused one; the
 * rotated q and k are cheaper stored by one elementwise kernel.
 */
export const ATTENTION_PROLOGUE_COST = PROLOGUE_COST;

/** Movement ops: no kernel of their own unless fusion decides to store one (see lowerEntry). */
const isView = (n: Node) => OPS[n.op].kind === "movement";
/** A view of several tensors side by side (concat): each element reads exactly one of them. */
const isJoin = (n: Node) => isView(n) && OPS[n.op].arity === "many";

export function chooseMaterialized(
  order: readonly Node[],
  roots: ReadonlySet<number>,
  fuse: boolean,
): Materialization {
  const stored = new Set<number>();
  const consumers = new Map<number, Node[]>();
  for (const n of order) for (const s of n.src) consumers.set(s.id, [...(consumers.get(s.id) ?? []), n]);
  const kernelKind = (n: Node) => LOWERING[n.op].kernel;
  if (!fuse) {
    for (const n of order) if (kernelKind(n) !== null) stored.add(n.id);
    return { stored, epilogues: new Map(), rows: new Map(), splits: new Map() };
  }

  // Inline cost: elementwise ops a reader evaluates to produce one element of n (views add none).
  const cost = new Map<number, number>();
  const inlineCost = (n: Node): number => (stored.has(n.id) ? 0 : cost.get(n.id) ?? 0);
  // The kernels that evaluate n: its readers, looking through views (which are evaluated inline).
  const kernelReaders = (n: Node): Node[] =>
    (consumers.get(n.id) ?? []).flatMap((r) => (isView(r) && !stored.has(r.id) ? kernelReaders(r) : [r]));
  for (const n of order) {
    const kind = kernelKind(n);
    // A Philox draw is ~10 rounds of 32-bit products: worth storing rather than recomputing per load.
    const own = kind === "elementwise" ? 1 : OPS[n.op].kind === "random" ? RANDOM_COST : 0;
    // A join evaluates only the piece an element falls in (see joinPieces): the dearest piece counts.
    const srcCost = isJoin(n)
      ? Math.max(0, ...n.src.map(inlineCost))
      : n.src.reduce((s, x) => s + inlineCost(x), 0);
    cost.set(n.id, own + srcCost);
    if ((roots.has(n.id) && kind === "elementwise") || (kind !== null && kind !== "elementwise")) {
      stored.add(n.id);
      continue;
    }
    const c = cost.get(n.id)!;
    // Leaves are computed or loaded where read; a view of stored tensors costs nothing to inline.
    if (OPS[n.op].kind === "leaf" || c === 0) continue;
    const readers = kernelReaders(n);
    const direct = consumers.get(n.id) ?? [];
    const feeds = (k: string) => readers.some((r) => OPS[r.op].kind === k);
    // A piece of a join is stored with the whole join (one kernel), not on its own for an operand.
    const piece = direct.length > 0 && direct.every(isJoin);
    const expanded = !piece && c >= MULTI_USE_COST &&
      readers.some((r) => kernelKind(r) === "elementwise" && size(r.shape) >= EXPANSION * size(n.shape));
    if (
      expanded ||
      (kind === "elementwise" && direct.length >= 2 && c >= MULTI_USE_COST) || c > MAX_INLINE_COST ||
      (!piece && (feeds("contraction") || feeds("convolution")) && c > PROLOGUE_COST) ||
      (!piece && feeds("attention") && c > ATTENTION_PROLOGUE_COST)
    ) {
      stored.add(n.id);
    }
  }
  // A conv's weights read through a join (dx's kernel, flipped in space by concats of its taps,
  // compiler/conv_vjp.ts) are stored: the conv kernel loads every weight n / tn times and each load
  // would branch through the pieces (on lavapipe dx ran 1.5x the forward conv's time); the copy is
  // of the small kernel tensor, one pass.
  for (const n of order) {
    const w = n.src[1];
    if (OPS[n.op].kind === "convolution" && w && isView(w) && readsJoin(w, stored)) stored.add(w.id);
  }
  // Views read by a matmul stay views, but elementwise work between a stored node and a view that
  // a matmul reads was decided above. Now epilogues: matmul -> flat elementwise work -> one stored
  // node. The work may read the accumulator more than once (GELU is x * Phi(x), SiLU x * sigmoid(x)):
  // every reader of an unstored node in between must lead to the same stored node, so the matmul's
  // value is needed nowhere else.
  const epilogues = new Map<number, Node>();
  for (const m of order) {
    const k = kernelKind(m);
    if ((k !== "matmul" && k !== "conv" && k !== "reduce") || roots.has(m.id)) continue;
    const end = epilogueEnd(m, consumers, stored, roots);
    if (end && !epilogues.has(end.id)) {
      epilogues.set(end.id, m);
      stored.delete(m.id);
    }
  }
  const rows = fuseRows(order, roots, stored, epilogues, consumers, onlyFlatPaths);
  const splits = new Map<number, Node[]>();
  for (const m of order) {
    if (kernelKind(m) !== "matmul" || !stored.has(m.id) || roots.has(m.id)) continue;
    const parts = consumers.get(m.id) ?? [];
    if (parts.length >= 2 && parts.every((p) => isColumnSlice(p, m) && !roots.has(p.id))) {
      splits.set(m.id, parts);
      for (const p of parts) stored.add(p.id);
    }
  }
  return { stored, epilogues, rows, splits };
}

/** Whether view `v` reads a join, through views only (stopping at stored nodes). */
function readsJoin(v: Node, stored: ReadonlySet<number>): boolean {
  if (isJoin(v)) return true;
  return v.src.some((s) => isView(s) && !stored.has(s.id) && readsJoin(s, stored));
}

/** A slice of `m` that keeps every axis but the last whole. */
function isColumnSlice(p: Node, m: Node): boolean {
  if (p.op !== "slice") return false;
  const { starts, ends } = p.arg as { starts: readonly number[]; ends: readonly number[] };
  const last = m.shape.length - 1;
  return m.shape.every((d, i) => i === last || (starts[i] === 0 && ends[i] === d));
}

/** Elementwise work or a reshape: its element at flat index f reads its sources at f. */
export const isFlat = (n: Node): boolean =>
  n.op === "reshape" || (LOWERING[n.op].kernel === "elementwise" && n.op !== "gather");

/**
 * The one stored node that all of m's flat elementwise readers lead to (through unstored, same-sized
 * elementwise nodes and reshapes), or undefined when m's value escapes elsewhere: a reader that is
 * not flat elementwise work, a root, or a second stored node. Every path from it down to m is then
 * flat (what onlyFlatPaths checks from the top), since the walk saw each node on such a path.
 */
function epilogueEnd(
  m: Node,
  consumers: ReadonlyMap<number, Node[]>,
  stored: ReadonlySet<number>,
  roots: ReadonlySet<number>,
): Node | undefined {
  let end: Node | undefined;
  const seen = new Set<number>();
  const stack = [m];
  while (stack.length) {
    const c = stack.pop()!;
    const readers = consumers.get(c.id) ?? [];
    if (readers.length === 0) return undefined;
    for (const r of readers) {
      if (!isFlat(r) || size(r.shape) !== size(m.shape)) return undefined;
      if (stored.has(r.id)) {
        if (end && end !== r) return undefined;
        end = r;
        continue;
      }
      // A root view (an output read back through a copy) needs the value stored.
      if (roots.has(r.id)) return undefined;
      if (!seen.has(r.id)) {
        seen.add(r.id);
        stack.push(r);
      }
    }
  }
  return end;
}

/**
 * True when every inline path from `top` down to `target` goes through elementwise ops and
 * reshapes only, so the element at flat index f of `top` reads `target` at the same flat index.
 */
export function onlyFlatPaths(top: Node, target: Node, stored: ReadonlySet<number>): boolean {
  const stack = [top];
  const seen = new Set<number>();
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n.id)) continue;
    seen.add(n.id);
    for (const s of n.src) {
      if (s === target) {
        if (!isFlat(n)) return false;
        continue;
      }
      if (stored.has(s.id) || !reaches(s, target, stored)) continue;
      if (!isFlat(s)) return false;
      if (size(s.shape) !== size(target.shape)) return false;
      stack.push(s);
    }
  }
  return true;
}

/** Whether `target` is among `from`'s sources, looking through unstored nodes only. */
export function reaches(from: Node, target: Node, stored: ReadonlySet<number>): boolean {
  const stack = [from];
  const seen = new Set<number>();
  while (stack.length) {
    const n = stack.pop()!;
    if (n === target) return true;
    if (seen.has(n.id) || (stored.has(n.id) && n !== from)) continue;
    seen.add(n.id);
    stack.push(...n.src);
  }
  return false;
}
