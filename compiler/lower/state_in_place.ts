/**
 * Entry state updated in place. An entry's new state value is normally computed into `act` and
 * copied into its slot after the last kernel (compile.ts, StateSlots), so every kernel sees the old
 * value. When the new value is assembled from elementwise kernels that each read the old state only
 * at the element they write, those kernels can write straight into the slot instead: the KV cache's
 * per-layer merges (spec/transfusion/cached.ts) are such kernels, joined by a concat of the layers,
 * and in place there is neither the concat's pass over the whole cache nor the copy after it.
 *
 *   new state = reshape / concat (outer axes of size 1) of ... of writers W_i,   W_i at offset o_i
 *
 * Safe when (a) every W_i is a plain elementwise kernel of its own (no epilogue, row or split) with
 * no fixed place yet, (b) every path from W_i to the old state maps W_i's element e to state element
 * o_i + e (flat elementwise ops, reshapes, contiguous slices), and (c) no other kernel reads the old
 * state or the views between the writers and the output. Then each old element is read only by the
 * invocation that overwrites it, and everything that reads a W_i reads the new value, where the slot
 * holds it. Where the merges are computed inline by the one kernel that stores the output (prefill:
 * nothing else reads them), that kernel writes the slot when it reads the old state only at the
 * element it writes and no other kernel reads the old state (`readsOnlyAt`, in lower.ts). Otherwise
 * the copy stays.
 */
import { type Node, size } from "../ir/mod.ts";
import { isFlat, reaches } from "../passes/fusion.ts";
import type { Task } from "./emit.ts";

export interface InPlaceWriter {
  readonly task: Task;
  /** Where in the state slot the task's output goes, in elements. */
  readonly offset: number;
  /**
   * The task is where(c, x, old) with `old` exactly the state element it overwrites: it only needs
   * to write x where c holds (the merge's elements outside the window are left as they are).
   */
  readonly keepsOld: boolean;
}

/** The kernels that can write `out` (the new value of state `old`) into its slot, or undefined. */
export function stateWritersInPlace(
  out: Node,
  old: Node,
  producer: ReadonlyMap<number, Task>,
  tasks: readonly Task[],
  stored: ReadonlySet<number>,
): InPlaceWriter[] | undefined {
  if (size(out.shape) !== size(old.shape)) return undefined;
  const writers: InPlaceWriter[] = [];
  const between = new Set<number>();
  const walk = (n: Node, offset: number): boolean => {
    const p = producer.get(n.id);
    if (p) {
      const plain = !p.copy && p.kind === "elementwise" && !p.fused && !p.row && !p.parts &&
        p.at === undefined;
      if (!plain || !readsOnlyAt(n, old, offset, stored)) return false;
      writers.push({
        task: p,
        offset,
        keepsOld: n.op === "where" && isViewAt(n.src[2]!, old, offset, stored),
      });
      return true;
    }
    between.add(n.id);
    if (n.op === "reshape") return walk(n.src[0]!, offset);
    if (n.op !== "concat") return false;
    return n.src.every((piece, i) => {
      const start = pieceStart(n, i);
      return start !== undefined && walk(piece, offset + start);
    });
  };
  if (!walk(out, 0) || writers.length === 0) return undefined;
  const mine = new Set(writers.map((w) => w.task));
  // One kernel has one destination: a value placed twice in the state (concat(x, x)) is copied.
  if (mine.size !== writers.length) return undefined;
  const readsOld = (t: Task) => t.reads.some((r) => r.id === old.id || between.has(r.id));
  if (tasks.some((t) => !mine.has(t) && readsOld(t))) return undefined;
  return writers;
}

/** Whether every path from `top` to `old` (through unstored nodes) reads old's element offset + e at e. */
export function readsOnlyAt(top: Node, old: Node, offset: number, stored: ReadonlySet<number>): boolean {
  // visit(n, shift): top's element e reads n's element e + shift.
  const visit = (n: Node, shift: number): boolean =>
    n.src.every((s, i) => {
      if (s.id !== old.id && (stored.has(s.id) || !reaches(s, old, stored))) return true;
      let next: number | undefined;
      if (isFlat(n) && size(s.shape) === size(n.shape)) next = shift;
      else if (n.op === "slice") {
        const start = contiguousStart(n, s);
        next = start === undefined ? undefined : shift + start;
      } else if (n.op === "concat") {
        const start = pieceStart(n, i);
        next = start === undefined ? undefined : shift - start;
      }
      if (next === undefined) return false;
      return s.id === old.id ? next === offset : visit(s, next);
    });
  return visit(top, 0);
}

/** Whether `n` is `old` seen through reshapes and contiguous slices, element e at old's offset + e. */
function isViewAt(n: Node, old: Node, offset: number, stored: ReadonlySet<number>): boolean {
  let shift = 0;
  while (n.id !== old.id) {
    if (stored.has(n.id)) return false;
    const s = n.src[0]!;
    if (n.op === "slice") {
      const start = contiguousStart(n, s);
      if (start === undefined) return false;
      shift += start;
    } else if (n.op !== "reshape") return false;
    n = s;
  }
  return shift === offset;
}

/** Where piece i of a concat starts in its flat order, when the pieces are contiguous runs. */
function pieceStart(concat: Node, i: number): number | undefined {
  const { axis } = concat.arg as { axis: number };
  if (concat.shape.slice(0, axis).some((d) => d !== 1)) return undefined;
  const inner = size(concat.shape.slice(axis + 1));
  return concat.src.slice(0, i).reduce((at, piece) => at + piece.shape[axis]! * inner, 0);
}

/**
 * Where a slice's elements start in its source's flat order, when they are one contiguous run there
 * (the box is whole along every axis after the first partial one, and one wide before it).
 */
function contiguousStart(slice: Node, src: Node): number | undefined {
  const { starts, ends } = slice.arg as { starts: readonly number[]; ends: readonly number[] };
  const dims = src.shape;
  const partial = dims.findIndex((d, i) => starts[i] !== 0 || ends[i] !== d);
  if (partial < 0) return 0;
  if (dims.some((d, i) => i > partial && (starts[i] !== 0 || ends[i] !== d))) return undefined;
  if (dims.some((_, i) => i < partial && ends[i]! - starts[i]! !== 1)) return undefined;
  return dims.reduce((at, _, i) => at + starts[i]! * size(dims.slice(i + 1)), 0);
}
