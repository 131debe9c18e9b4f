import type { AdapterClass } from "../../kernels/matmul.ts";
import { TREE_MAX_OUTPUTS } from "../../kernels/reduce.ts";
import { type Node, node, size } from "../ir/mod.ts";
import { rewriteBottomUp } from "./rewrite.ts";

/**
 * Long reductions to few outputs, split in two: sum(x) over L elements becomes the sum of S partial
 * sums over L / S elements each. Why: the reduction kernel (kernels/reduce.ts) gives each output one
 * workgroup, so a loss's mean over a whole activation ran on one core of lavapipe and would run on
 * one multiprocessor of a GPU (the U-Net stem bench's mean of 262144 squares: one workgroup). The
 * partials are a small tensor the second pass reduces. Sum and max are associative, so only the
 * rounding order changes (a sum's error bound gets smaller: two short sums instead of one long one).
 *
 * S per adapter class (splitFactor). On lavapipe many short serial sums win: the first pass gets
 * TREE_MAX_OUTPUTS (1024) outputs or more, so reduce.ts gives each one invocation, and chunks of at least 32:
 * the stem's mean of 262144 squares went 640 us -> 341 + 31 us (1024 partials of 256), where 256 tree
 * workgroups of 1024 measured 641 us (each lavapipe "workgroup" is a serial loop over its lanes with
 * barriers) and 512 tree workgroups of 256 (a mean of 131072) 1190 us against 615 unsplit. On a GPU the
 * tree form is the one that keeps a multiprocessor's lanes reading adjacent words, so it gets up to 256
 * workgroups in all of at least 1024 elements each (not measured on a GPU: no device in these sessions).
 *
 * Applies to a reduction over one contiguous run of axes (a full reduction, a sum over the rows of
 * a matrix, ...) with at least SPLIT_MIN_LENGTH elements per output and fewer than SPLIT_MAX_OUTPUTS
 * outputs, where L has a divisor in range (any power-of-two factor does). Runs before fusion, so the
 * first pass still reads its input through the inline value rules (a square, a GELU) and the second
 * still takes the reduction's epilogue (a mean's division).
 */
export const SPLIT_MIN_LENGTH = 16384;
export const SPLIT_MAX_OUTPUTS = 64;
/** On lavapipe: partials of at least this many elements, TREE_MAX_OUTPUTS or more in all. */
const CPU_CHUNK_MIN = 32;
/** On a GPU: partials of at least this many elements, at most GPU_PARTIALS in all. */
const GPU_CHUNK_MIN = 1024;
const GPU_PARTIALS = 256;

/** Rewrites each long reduction to few outputs (see above); returns the roots in order. */
export function splitLongReductions(roots: readonly Node[], adapterClass: AdapterClass): Node[] {
  return rewriteBottomUp(
    roots,
    (n) =>
      n.op === "sum" || n.op === "reduce_max"
        ? splitReduction(n as Node<"sum" | "reduce_max">, adapterClass)
        : n,
  );
}

function splitReduction(n: Node<"sum" | "reduce_max">, adapterClass: AdapterClass): Node {
  const x = n.src[0]!;
  const axes = [...n.arg.axes].sort((a, b) => a - b);
  if (axes.length === 0) return n;
  const [first, last] = [axes[0]!, axes.at(-1)!];
  if (last - first + 1 !== axes.length) return n; // not one contiguous run
  const length = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const outputs = size(n.shape);
  if (length < SPLIT_MIN_LENGTH || outputs >= SPLIT_MAX_OUTPUTS) return n;
  const parts = splitFactor(length, outputs, adapterClass);
  if (parts === undefined) return n;
  // x as [...before, parts, length / parts, ...after]: reduce the chunks, then the partials.
  const before = x.shape.slice(0, first);
  const after = x.shape.slice(last + 1);
  const chunked = node("reshape", [x], { shape: [...before, parts, length / parts, ...after] });
  const partials = node(n.op, [chunked], { axes: [first + 1] });
  const total = node(n.op, [partials], { axes: [first] });
  return node("reshape", [total], { shape: n.shape });
}

/**
 * Partials per output, a divisor of `length` (see above): on `cpu` the smallest that gives the first
 * pass TREE_MAX_OUTPUTS outputs with chunks of CPU_CHUNK_MIN or more; on `gpu` the largest up to
 * GPU_PARTIALS in all with chunks of GPU_CHUNK_MIN or more. Undefined when no divisor above 1 qualifies.
 */
export function splitFactor(length: number, outputs: number, adapterClass: AdapterClass): number | undefined {
  if (adapterClass === "cpu") {
    for (let s = Math.max(2, Math.ceil(TREE_MAX_OUTPUTS / outputs)); length / s >= CPU_CHUNK_MIN; s++) {
      if (length % s === 0) return s;
    }
    return undefined;
  }
  const most = Math.min(Math.floor(GPU_PARTIALS / outputs), Math.floor(length / GPU_CHUNK_MIN));
  for (let s = most; s >= 2; s--) if (length % s === 0) return s;
  return undefined;
}
