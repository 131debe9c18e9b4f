import { type DType, fmtShape, node } from "../compiler/ir/mod.ts";
import { broadcastNode, broadcastShapes, fail, lift, normAxis, Tensor } from "./tensor.ts";
import type { MaxRank } from "./rank.ts";

/** `cond ? a : b`, elementwise with broadcasting. */
export function where<D extends DType, R1 extends number = 0, R2 extends number = 0>(
  cond: Tensor<"bool", number>,
  a: Tensor<D, R1> | number,
  b: Tensor<D, R2> | number,
): Tensor<D, MaxRank<R1, R2>> {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : undefined;
  if (!like) fail("where", "at least one of the two values must be a tensor");
  const [at, bt] = [lift(a, like), lift(b, like)];
  if (at.dtype !== bt.dtype) fail("where", `value dtypes differ: ${at.dtype} and ${bt.dtype}`);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, at.shape), bt.shape);
  return new Tensor(
    node("where", [
      broadcastNode(cond.node, shape),
      broadcastNode(at.node, shape),
      broadcastNode(bt.node, shape),
    ], null),
  );
}

/** Joins tensors of equal rank along `axis`. */
export function concat<D extends DType, R extends number>(
  tensors: readonly Tensor<D, R>[],
  axis: number,
): Tensor<D, R> {
  if (tensors.length === 0) fail("concat", "needs at least one tensor");
  const a = normAxis(axis, tensors[0]!.rank, "concat");
  if (tensors.length === 1) return tensors[0]!;
  return new Tensor(node("concat", tensors.map((t) => t.node), { axis: a }));
}

/** A tensor filled with `value`. */
export function full<D extends DType, const S extends readonly number[]>(
  shape: S,
  value: number,
  dtype: D,
): Tensor<D, S["length"]> {
  return new Tensor(node("const", [], { value, shape, dtype }));
}

/** The index along `axis` of every element (0, 1, 2, ...). */
export function iota<D extends DType, const S extends readonly number[]>(
  shape: S,
  axis: number,
  dtype: D,
): Tensor<D, S["length"]> {
  return new Tensor(node("iota", [], { shape, axis: normAxis(axis, shape.length, "iota"), dtype }));
}

/** 0..n-1 as a vector. */
export function arange<D extends DType>(n: number, dtype: D): Tensor<D, 1> {
  return iota([n], 0, dtype);
}

/** Adds rows of `updates` into a zero table of `rows` rows at `index` (the adjoint of gather). */
export function scatterAdd<D extends DType>(
  index: Tensor<"i32" | "u32", number>,
  updates: Tensor<D, number>,
  rows: number,
): Tensor<D, number> {
  const lead = updates.shape.slice(0, index.rank);
  if (lead.some((d, i) => d !== index.shape[i])) {
    fail(
      "scatterAdd",
      `updates ${fmtShape(updates.shape)} must start with the index shape ${fmtShape(index.shape)}`,
    );
  }
  return new Tensor(node("scatter_add", [index.node, updates.node], { rows }));
}

/** One-hot rows of `classes` for an integer tensor. */
export function oneHot(index: Tensor<"i32", number>, classes: number): Tensor<"f32", number> {
  const shape = [...index.shape, classes];
  const ids = iota(shape, shape.length - 1, "i32");
  return ids.eq(index.unsqueeze(-1)).cast("f32");
}

export { broadcastShapes };
