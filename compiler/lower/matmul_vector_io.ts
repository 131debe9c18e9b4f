import type { Node } from "../ir/mod.ts";
import { isHalfArena, isWordArena, loadVec4, scalarType, scaleIndex, sumIndex } from "../../kernels/wgsl.ts";
import { Ix, rowMajorStrides } from "./index.ts";
import type { Location } from "./functions.ts";
import { arenaIndex } from "./arena_offsets.ts";

/** One matmul operand read in place with vec4 loads. */
export interface VectorOperand<Mode extends string> {
  /** Which of its two inner axes is read four at a time (MatmulVectorIO's `a` / `b`). */
  readonly mode: Mode;
  /** The buffers it is read from: the kernel declares them as vec4 arrays. */
  readonly buffers: readonly string[];
  /** WGSL statements of a function returning the vec4<f32> operand[b, i .. , j ..] (b flat over the
   *  batch axes, the vectorized index a multiple of 4). */
  readonly body: (b: string, i: string, j: string) => string;
}

export interface VectorOperands {
  readonly a: VectorOperand<"k" | "m">;
  readonly b: VectorOperand<"n" | "k">;
}

/**
 * The vec4 layouts of a matmul's operands A [...b, m, k] and B [...b, k, n], or undefined unless both
 * have one. An operand qualifies when it is a stored float tensor in an arena or `params`, a view of
 * one (reshape, permute, expand, slice) whose index is affine in the stored one per group of axes,
 * or a concat of such views (a merged product's operand), when:
 *   - along one inner axis (the vectorized one) the innermost stride is 1 over a multiple of 4
 *     elements, so four aligned neighbours are adjacent in memory;
 *   - every other stride and the base offset are multiples of 4, so each group starts 16-byte
 *     aligned (arena and parameter offsets are 4-aligned; a slice may break it);
 *   - a concat along the vectorized axis joins pieces at multiples of 4.
 *   A row-major [.., m, k] -> "k"; A = X^T read in place from X [.., k, m] -> "m"
 *   B row-major [.., k, n] -> "n"; B = W^T read in place from W [.., n, k] -> "k"
 * k % 4 == 0 is required in any case (the kernel steps k by 4).
 */
export function matmulVectorOperands(
  mm: Node,
  location: ReadonlyMap<number, Location>,
): VectorOperands | undefined {
  const [a, b] = [mm.src[0]!, mm.src[1]!];
  const r = mm.shape.length;
  if (a.shape[r - 1]! % 4 !== 0) return undefined;
  const batchShape = mm.shape.slice(0, r - 2);
  const opA = operand(a, location, batchShape, { k: r - 1, m: r - 2 } as const);
  const opB = operand(b, location, batchShape, { n: r - 1, k: r - 2 } as const);
  return opA && opB ? { a: opA, b: opB } : undefined;
}

/** The element strides one axis steps through, outermost first (a reshape can merge several). */
type Axis = readonly { readonly size: number; readonly stride: number }[];

/** A tensor as a view of a buffer: element [x0, x1, ..] at offset + sum over axes of index(xi). */
interface StridedView {
  readonly buffer: string;
  readonly offset: number;
  /** Per axis; empty for size-1 axes. */
  readonly axes: readonly Axis[];
}

/** Concat pieces (one piece: no concat) along `axis`, piece p covering [starts[p], starts[p + 1]). */
interface Pieces {
  readonly axis: number;
  readonly views: readonly StridedView[];
  readonly starts: readonly number[];
}

function operand<Mode extends string>(
  x: Node,
  location: ReadonlyMap<number, Location>,
  batchShape: readonly number[],
  modes: Readonly<Record<Mode, number>>,
): VectorOperand<Mode> | undefined {
  const pieces = piecesOf(x, location);
  if (!pieces) return undefined;
  const mode = (Object.keys(modes) as Mode[]).find((m) =>
    pieces.views.every((v) => vectorAlong(v, modes[m])) &&
    (pieces.axis !== modes[m] || pieces.starts.every((s) => s % 4 === 0))
  );
  if (mode === undefined) return undefined;
  return {
    mode,
    buffers: [...new Set(pieces.views.map((v) => v.buffer))],
    body: (b, i, j) => {
      const at = [...Ix.flat(batchShape, b).axes(), i, j];
      const load = (p: number) => {
        const start = pieces.starts[p]!;
        const shifted = at.map((x, d) => (d === pieces.axis && start > 0 ? `(${x} - ${start}u)` : x));
        return `return ${loadVec4(pieces.views[p]!.buffer, indexOf(pieces.views[p]!, shifted))};`;
      };
      const last = pieces.views.length - 1;
      const cases = pieces.views.slice(0, last).map((_, p) =>
        `  if (${at[pieces.axis]} < ${pieces.starts[p + 1]}u) { ${load(p)} }`
      );
      return [...cases, `  ${load(last)}`].join("\n");
    },
  };
}

/** Four elements along `axis`, starting at a multiple of 4, are adjacent and 16-byte aligned. */
function vectorAlong(v: StridedView, axis: number): boolean {
  const inner = v.axes[axis]?.at(-1);
  if (!inner || inner.stride !== 1 || inner.size % 4 !== 0) return false;
  if (!(isWordArena(v.buffer) || isHalfArena(v.buffer) || v.buffer === "params")) return false;
  const others = v.axes.flatMap((a, d) => (d === axis ? a.slice(0, -1) : a));
  return v.offset % 4 === 0 && others.every((s) => s.stride % 4 === 0);
}

/** WGSL element index of the view at per-axis indices `at`. */
function indexOf(v: StridedView, at: readonly string[]): string {
  const terms = v.axes.flatMap((axis, d) => {
    let inner = 1;
    return axis.toReversed().map((s, k) => {
      const outermost = k === axis.length - 1;
      const quotient = inner === 1 ? at[d]! : `(${at[d]} / ${inner}u)`;
      inner *= s.size;
      return scaleIndex(outermost ? quotient : `(${quotient} % ${s.size}u)`, s.stride);
    });
  });
  return arenaIndex(v.offset, sumIndex(terms.filter((t) => t !== "0u")));
}

function piecesOf(x: Node, location: ReadonlyMap<number, Location>): Pieces | undefined {
  if (x.op !== "concat" || location.has(x.id)) {
    const view = stridedView(x, location);
    return view && { axis: -1, views: [view], starts: [0] };
  }
  const axis = (x.arg as { axis: number }).axis;
  const views: StridedView[] = [];
  const starts: number[] = [];
  let start = 0;
  for (const s of x.src) {
    const view = stridedView(s, location);
    if (!view) return undefined;
    views.push(view);
    starts.push(start);
    start += s.shape[axis]!;
  }
  return { axis, views, starts };
}

/**
 * Where `x` lives as a strided view of a stored tensor, following movement ops down to a node with a
 * location; undefined when it is computed or its index is not affine per axis group.
 */
function stridedView(x: Node, location: ReadonlyMap<number, Location>): StridedView | undefined {
  const at = location.get(x.id);
  if (at) {
    if (scalarType(x.dtype) !== "f32") return undefined;
    const strides = rowMajorStrides(x.shape);
    const axes = x.shape.map((d, i) => (d === 1 ? [] : [{ size: d, stride: strides[i]! }]));
    return { buffer: at.buffer, offset: at.offset, axes };
  }
  const src = x.src[0];
  const moves = x.op === "reshape" || x.op === "permute" || x.op === "expand" || x.op === "slice";
  const view = moves && src ? stridedView(src, location) : undefined;
  if (!view || !src) return undefined;
  switch (x.op) {
    case "permute":
      return { ...view, axes: (x.arg as { perm: readonly number[] }).perm.map((p) => view.axes[p]!) };
    case "expand":
      return {
        ...view,
        axes: view.axes.map((a, d) => (x.shape[d] === src.shape[d] ? a : [{ size: x.shape[d]!, stride: 0 }])),
      };
    case "slice": {
      const starts = (x.arg as { starts: readonly number[] }).starts;
      let offset = view.offset;
      const axes: Axis[] = [];
      for (const [d, a] of view.axes.entries()) {
        if (x.shape[d] === src.shape[d]) {
          axes.push(a);
          continue;
        }
        if (a.length !== 1) return undefined; // a cut through merged axes is no longer affine
        offset += starts[d]! * a[0]!.stride;
        axes.push(x.shape[d] === 1 ? [] : [{ size: x.shape[d]!, stride: a[0]!.stride }]);
      }
      return { ...view, offset, axes };
    }
    default: {
      const axes = reshapeAxes(view.axes, x.shape);
      return axes && { ...view, axes };
    }
  }
}

/**
 * The axes of a reshape: the source's strided runs, outermost first, dealt out to the new dims in
 * order; a run is split where a dim ends inside it (when the dim's share divides it). Adjacent runs
 * that are contiguous merge, so a plain reshape keeps one run per axis.
 */
function reshapeAxes(from: readonly Axis[], to: readonly number[]): Axis[] | undefined {
  const runs = from.flat().map((s) => ({ ...s }));
  const axes: Axis[] = [];
  for (const dim of to) {
    const axis: { size: number; stride: number }[] = [];
    let need = dim;
    while (need > 1) {
      const run = runs[0];
      if (!run) return undefined;
      if (run.size <= need) {
        if (need % run.size !== 0) return undefined;
        axis.push(run);
        runs.shift();
        need /= run.size;
      } else {
        if (run.size % need !== 0) return undefined;
        run.size /= need;
        axis.push({ size: need, stride: run.stride * run.size });
        need = 1;
      }
    }
    axes.push(merge(axis));
  }
  return runs.length === 0 ? axes : undefined;
}

function merge(axis: readonly { size: number; stride: number }[]): Axis {
  const out: { size: number; stride: number }[] = [];
  for (const s of axis) {
    const prev = out.at(-1);
    if (prev && prev.stride === s.stride * s.size) {
      out[out.length - 1] = { size: prev.size * s.size, stride: s.stride };
    } else out.push({ ...s });
  }
  return out;
}
