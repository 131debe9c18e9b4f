import {
  type DType,
  type FloatDType,
  fmtShape,
  isFloat,
  type Node,
  node,
  type Op,
  SpecError,
  userSite,
} from "../compiler/ir/mod.ts";
import type { Dec, Inc, MaxRank } from "./rank.ts";

/**
 * A traced tensor: a thin typed handle on an IR node. The TypeScript type carries the dtype and the
 * rank, so `deno check` rejects an i32 + f32 or a rank-3 tensor where rank 2 is required; the rest
 * (sizes, axes) is checked when the node is built and reported against the user's spec line.
 */
export class Tensor<D extends DType = DType, R extends number = number> {
  declare readonly __rank: R;
  constructor(readonly node: Node) {}

  get dtype(): D {
    return this.node.dtype as D;
  }
  get shape(): readonly number[] {
    return this.node.shape;
  }
  get rank(): R {
    return this.node.shape.length as R;
  }
  /** Size of one axis; negative axes count from the end. */
  dim(axis: number): number {
    return this.shape[normAxis(axis, this.rank, "dim")]!;
  }

  // --- elementwise arithmetic (broadcasting, numbers become constants of this dtype). A number
  // operand has rank 0 (the `R2 = 0` default: nothing to infer R2 from), so `s.mul(0.5)` keeps s's rank.
  add<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("add", this, b);
  }
  sub<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("sub", this, b);
  }
  mul<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("mul", this, b);
  }
  div<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("div", this, b);
  }
  pow<R2 extends number = 0>(
    this: Tensor<FloatDType & D, R>,
    b: Tensor<D, R2> | number,
  ): Tensor<D, MaxRank<R, R2>> {
    return binary("pow", this, b);
  }
  maximum<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("max", this, b);
  }
  minimum<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<D, MaxRank<R, R2>> {
    return binary("min", this, b);
  }
  // --- comparisons and logic
  lt<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("lt", this, b);
  }
  le<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("le", this, b);
  }
  gt<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("lt", lift(b, this), this);
  }
  ge<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("le", lift(b, this), this);
  }
  eq<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("eq", this, b);
  }
  ne<R2 extends number = 0>(b: Tensor<D, R2> | number): Tensor<"bool", MaxRank<R, R2>> {
    return binary("ne", this, b);
  }
  and<R2 extends number>(this: Tensor<"bool", R>, b: Tensor<"bool", R2>): Tensor<"bool", MaxRank<R, R2>> {
    return binary("and", this, b);
  }
  or<R2 extends number>(this: Tensor<"bool", R>, b: Tensor<"bool", R2>): Tensor<"bool", MaxRank<R, R2>> {
    return binary("or", this, b);
  }
  not(this: Tensor<"bool", R>): Tensor<"bool", R> {
    return unary("not", this);
  }

  // --- unary math
  neg(): Tensor<D, R> {
    return unary("neg", this);
  }
  abs(): Tensor<D, R> {
    return unary("abs", this);
  }
  exp(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("exp", this);
  }
  log(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("log", this);
  }
  sqrt(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("sqrt", this);
  }
  rsqrt(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("rsqrt", this);
  }
  tanh(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("tanh", this);
  }
  sigmoid(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("sigmoid", this);
  }
  erf(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("erf", this);
  }
  sin(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("sin", this);
  }
  cos(this: Tensor<FloatDType & D, R>): Tensor<D, R> {
    return unary("cos", this);
  }
  square(): Tensor<D, R> {
    return this.mul(this) as Tensor<D, R>;
  }
  cast<D2 extends DType>(dtype: D2): Tensor<D2, R> {
    if ((dtype as DType) === this.dtype) return this as unknown as Tensor<D2, R>;
    return new Tensor(node("cast", [this.node], { dtype }));
  }

  // --- reductions: one axis drops it; `keepdims` keeps size 1
  sum(): Tensor<D, 0>;
  sum(axis: number): Tensor<D, Dec<R>>;
  sum(axes?: readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number>;
  sum(axes?: number | readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number> {
    return reduce("sum", this, axes, opts?.keepdims ?? false);
  }
  max(): Tensor<D, 0>;
  max(axis: number): Tensor<D, Dec<R>>;
  max(axes?: readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number>;
  max(axes?: number | readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number> {
    return reduce("reduce_max", this, axes, opts?.keepdims ?? false);
  }
  mean(): Tensor<D, 0>;
  mean(axis: number): Tensor<D, Dec<R>>;
  mean(axes?: readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number>;
  mean(axes?: number | readonly number[], opts?: { keepdims?: boolean }): Tensor<D, number> {
    const list = axisList(axes, this.rank, "mean");
    const count = list.reduce((n, a) => n * this.shape[a]!, 1);
    return reduce("sum", this, list, opts?.keepdims ?? false).div(count);
  }
  /** Sum along `axis` keeping it as size 1 (handy for softmax-style code). */
  sumKeep(axis: number): Tensor<D, R> {
    return reduce("sum", this, [axis], true) as unknown as Tensor<D, R>;
  }
  maxKeep(axis: number): Tensor<D, R> {
    return reduce("reduce_max", this, [axis], true) as unknown as Tensor<D, R>;
  }
  meanKeep(axis: number): Tensor<D, R> {
    return this.sumKeep(axis).div(this.dim(axis)) as Tensor<D, R>;
  }

  // --- contraction
  /**
   * Matrix product over the last two axes. A rank-2 right operand (a weight) is applied to every
   * leading index of the left one; otherwise batch dims broadcast.
   */
  matmul<R2 extends number>(b: Tensor<D, R2>): Tensor<D, MaxRank<R, R2>> {
    return matmul(this, b) as Tensor<D, MaxRank<R, R2>>;
  }

  // --- movement (views)
  /** New shape with the same elements; one entry may be -1 (inferred). */
  reshape<const S extends readonly number[]>(shape: S): Tensor<D, S["length"]> {
    return new Tensor(node("reshape", [this.node], { shape: resolveReshape(this.shape, shape) }));
  }
  permute<const P extends readonly number[]>(perm: P): Tensor<D, P["length"]> {
    const r = this.rank;
    return new Tensor(node("permute", [this.node], { perm: perm.map((p) => normAxis(p, r, "permute")) }));
  }
  /** Swaps two axes (default: the last two). */
  transpose(a = -2, b = -1): Tensor<D, R> {
    const r = this.rank;
    const perm = [...Array(r).keys()];
    const [i, j] = [normAxis(a, r, "transpose"), normAxis(b, r, "transpose")];
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    return this.permute(perm) as unknown as Tensor<D, R>;
  }
  /** Broadcasts to `shape` (numpy rules: align right, size-1 axes stretch). */
  broadcastTo<const S extends readonly number[]>(shape: S): Tensor<D, S["length"]> {
    return new Tensor(broadcastNode(this.node, shape));
  }
  /** Adds a size-1 axis at `axis`. */
  unsqueeze(axis: number): Tensor<D, Inc<R>> {
    const r = this.rank + 1;
    const a = normAxis(axis, r, "unsqueeze");
    const shape = [...this.shape];
    shape.splice(a, 0, 1);
    return this.reshape(shape) as unknown as Tensor<D, Inc<R>>;
  }
  /** Removes a size-1 axis. */
  squeeze(axis: number): Tensor<D, Dec<R>> {
    const a = normAxis(axis, this.rank, "squeeze");
    if (this.shape[a] !== 1) fail("squeeze", `axis ${axis} of ${fmtShape(this.shape)} is not size 1`);
    return this.reshape(this.shape.filter((_, i) => i !== a)) as unknown as Tensor<D, Dec<R>>;
  }
  /** Elements [start, end) along `axis` (negative values count from the end). */
  slice(axis: number, start: number, end?: number): Tensor<D, R> {
    const a = normAxis(axis, this.rank, "slice");
    const d = this.shape[a]!;
    const s = start < 0 ? d + start : start;
    const e = end === undefined ? d : end < 0 ? d + end : end;
    const starts = this.shape.map((_, i) => (i === a ? s : 0));
    const ends = this.shape.map((dd, i) => (i === a ? e : dd));
    return new Tensor(node("slice", [this.node], { starts, ends }));
  }
  /** Pads `axis` with `before`/`after` elements of `value`. */
  pad(axis: number, before: number, after: number, value = 0): Tensor<D, R> {
    const a = normAxis(axis, this.rank, "pad");
    const b = this.shape.map((_, i) => (i === a ? before : 0));
    const f = this.shape.map((_, i) => (i === a ? after : 0));
    return new Tensor(node("pad", [this.node], { before: b, after: f, value }));
  }
  /** Rows of this table (axis 0) picked by an integer index tensor: [v, ...rest] -> [...index, ...rest]. */
  gather<R2 extends number>(index: Tensor<"i32" | "u32", R2>): Tensor<D, number> {
    return new Tensor(node("gather", [this.node, index.node], null));
  }

  toString(): string {
    return `Tensor<${this.dtype}${fmtShape(this.shape)}>`;
  }
}

// ---------------------------------------------------------------------------------------------
// helpers shared by the methods and by spec/ops.ts

export function fail(op: string, detail: string): never {
  throw new SpecError(op, detail, userSite());
}

export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) fail(op, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

function axisList(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === "number" ? [axes] : axes;
  return list.map((a) => normAxis(a, rank, op));
}

/** A constant of `like`'s dtype, shaped as a scalar (broadcast later). */
export function lift(v: Tensor | number, like: Tensor): Tensor {
  if (v instanceof Tensor) return v;
  return new Tensor(node("const", [], { value: v, shape: [], dtype: like.dtype }));
}

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      fail(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (axis ${i}: ${x} vs ${y})`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

export function broadcastNode(n: Node, shape: readonly number[]): Node {
  if (n.shape.length === shape.length && n.shape.every((d, i) => d === shape[i])) return n;
  if (n.shape.length > shape.length) {
    fail("broadcastTo", `cannot broadcast ${fmtShape(n.shape)} to ${fmtShape(shape)}`);
  }
  const padded = [...Array(shape.length - n.shape.length).fill(1), ...n.shape];
  const reshaped = padded.length === n.shape.length ? n : node("reshape", [n], { shape: padded });
  return node("expand", [reshaped], { shape });
}

function binary<T>(op: Op, a: Tensor, b: Tensor | number): T {
  const bt = lift(b, a);
  if (a.dtype !== bt.dtype) {
    fail(op, `operand dtypes differ: ${a.dtype} and ${bt.dtype}; cast one with .cast("${a.dtype}")`);
  }
  const shape = broadcastShapes(op, a.shape, bt.shape);
  return new Tensor(
    node(op as "add", [broadcastNode(a.node, shape), broadcastNode(bt.node, shape)], null),
  ) as T;
}

function unary<T>(op: Op, x: Tensor): T {
  return new Tensor(node(op as "neg", [x.node], null)) as T;
}

function reduce(
  op: "sum" | "reduce_max",
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepdims: boolean,
): Tensor<never, number> {
  const list = axisList(axes, x.rank, op);
  const kept = node(op, [x.node], { axes: [...list].sort((p, q) => p - q) });
  if (keepdims) return new Tensor(kept);
  return new Tensor(node("reshape", [kept], { shape: x.shape.filter((_, i) => !list.includes(i)) }));
}

function resolveReshape(from: readonly number[], to: readonly number[]): number[] {
  const total = from.reduce((p, d) => p * d, 1);
  const known = to.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const free = to.filter((d) => d === -1).length;
  if (free > 1) fail("reshape", `only one -1 is allowed in ${fmtShape(to)}`);
  if (free === 1) {
    if (known === 0 || total % known !== 0) {
      fail("reshape", `cannot reshape ${fmtShape(from)} to ${fmtShape(to)}`);
    }
    return to.map((d) => (d === -1 ? total / known : d));
  }
  return [...to];
}

function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || b.rank < 2) {
    fail("matmul", `operands need rank >= 2, got ${fmtShape(a.shape)} x ${fmtShape(b.shape)}`);
  }
  if (a.dtype !== b.dtype) fail("matmul", `operand dtypes differ: ${a.dtype} and ${b.dtype}`);
  if (!isFloat(a.dtype)) fail("matmul", `expects float operands, got ${a.dtype}`);
  if (b.rank === 2 && a.rank > 2) {
    // [..., m, k] x [k, n]: fold the leading axes into m, one big matrix product.
    const lead = a.shape.slice(0, -1);
    const k = a.shape[a.rank - 1]!;
    const flat = new Tensor(node("reshape", [a.node], { shape: [lead.reduce((p, d) => p * d, 1), k] }));
    const out = new Tensor(node("matmul", [flat.node, b.node], null));
    return out.reshape([...lead, b.shape[1]!]);
  }
  const batch = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const an = broadcastNode(a.node, [...batch, ...a.shape.slice(-2)]);
  const bn = broadcastNode(b.node, [...batch, ...b.shape.slice(-2)]);
  return new Tensor(node("matmul", [an, bn], null));
}
