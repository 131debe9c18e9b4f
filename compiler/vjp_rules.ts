import { isFloat, type Node, node, type Op } from "./ir/mod.ts";
import { conv2dVjp } from "./conv_vjp.ts";

/**
 * Vector-Jacobian products, one rule per op. A rule gets the forward node and the cotangent of its
 * output (a float node of the same shape and dtype) and returns one cotangent per source, or null
 * where no gradient flows. Rules only build IR; `vjp` in autodiff.ts walks the graph and drops any
 * cotangent aimed at an integer or bool source.
 *
 * Choices at non-smooth points (each a valid subgradient):
 * - `abs` at 0: gradient 0.
 * - `max` / `min` on a tie: the cotangent is split equally, half to each operand.
 * - `reduce_max` with several maxima along the reduced axes: split equally among them.
 * - `pow` wrt the exponent where the base is <= 0: 0 (a^b * log a has no real value there).
 */
export type VjpRule<O extends Op> = (n: Node<O>, ct: Node) => (Node | null)[];

const full = (value: number, like: Node): Node =>
  node("const", [], { value, shape: like.shape, dtype: like.dtype });
const sub = (a: Node, b: Node) => node("sub", [a, b], null);
const mul = (a: Node, b: Node) => node("mul", [a, b], null);
const div = (a: Node, b: Node) => node("div", [a, b], null);
const neg = (a: Node) => node("neg", [a], null);
const lt = (a: Node, b: Node) => node("lt", [a, b], null);
const eq = (a: Node, b: Node) => node("eq", [a, b], null);
const where = (c: Node, a: Node, b: Node) => node("where", [c, a, b], null);
const scale = (value: number, x: Node) => mul(full(value, x), x);

/** Swaps the last two axes: [...b, m, k] -> [...b, k, m]. */
function transposeLast(x: Node): Node {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
  return node("permute", [x], { perm });
}

/** Sums `ct` back down to `shape` over the axes that `expand` stretched (keeping them as size 1). */
function unexpand(ct: Node, shape: readonly number[]): Node {
  const axes = shape.flatMap((d, i) => (d === 1 && ct.shape[i] !== 1 ? [i] : []));
  return axes.length === 0 ? ct : node("sum", [ct], { axes });
}

/** Weight in [0, 1] of the first operand of a max (`firstWins = lt(b, a)`) or min: 1, 1/2 on a tie, 0. */
function choiceWeight(firstWins: Node, a: Node, b: Node): Node {
  return where(firstWins, full(1, a), where(eq(a, b), full(0.5, a), full(0, a)));
}

function choose(n: Node, ct: Node, firstWins: Node): Node[] {
  const [a, b] = [n.src[0]!, n.src[1]!];
  const w = choiceWeight(firstWins, a, b);
  return [mul(ct, w), mul(ct, sub(full(1, w), w))];
}

export const VJP: { readonly [O in Op]: VjpRule<O> | "nondifferentiable" } = {
  input: "nondifferentiable",
  param: "nondifferentiable",
  const: "nondifferentiable",
  iota: "nondifferentiable",
  rand_uniform: "nondifferentiable",
  rand_normal: "nondifferentiable",
  neg: (_n, ct) => [neg(ct)],
  exp: (n, ct) => [mul(ct, n)],
  log: (n, ct) => [div(ct, n.src[0]!)],
  // d sqrt x = 1 / (2 sqrt x)
  sqrt: (n, ct) => [div(ct, scale(2, n))],
  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3: written with the output only, so the backward pass reads
  // the stored result and a norm's mean + eps can stay fused into its reduction.
  rsqrt: (n, ct) => [mul(ct, scale(-0.5, mul(n, mul(n, n))))],
  tanh: (n, ct) => [mul(ct, sub(full(1, n), mul(n, n)))],
  sigmoid: (n, ct) => [mul(ct, mul(n, sub(full(1, n), n)))],
  // d erf x = 2 / sqrt(pi) * e^(-x^2)
  erf: (n, ct) => {
    const x = n.src[0]!;
    return [mul(ct, scale(2 / Math.sqrt(Math.PI), node("exp", [neg(mul(x, x))], null)))];
  },
  sin: (n, ct) => [mul(ct, node("cos", [n.src[0]!], null))],
  cos: (n, ct) => [mul(ct, neg(node("sin", [n.src[0]!], null)))],
  abs: (n, ct) => {
    const x = n.src[0]!;
    const zero = full(0, x);
    const sign = where(lt(zero, x), full(1, x), where(lt(x, zero), full(-1, x), zero));
    return [mul(ct, sign)];
  },
  not: "nondifferentiable",
  cast: (n, ct) => {
    const x = n.src[0]!;
    return [isFloat(x.dtype) && isFloat(n.dtype) ? node("cast", [ct], { dtype: x.dtype }) : null];
  },
  add: (_n, ct) => [ct, ct],
  sub: (_n, ct) => [ct, neg(ct)],
  mul: (n, ct) => [mul(ct, n.src[1]!), mul(ct, n.src[0]!)],
  // d(a/b)/db = -a / b^2 = -(a/b) / b
  div: (n, ct) => {
    const b = n.src[1]!;
    return [div(ct, b), neg(mul(ct, div(n, b)))];
  },
  pow: (n, ct) => {
    const [a, b] = [n.src[0]!, n.src[1]!];
    const da = mul(ct, mul(b, node("pow", [a, sub(b, full(1, b))], null)));
    // log of a base replaced by 1 where a <= 0, so the unused branch is 0 rather than NaN.
    const safeLog = node("log", [where(lt(full(0, a), a), a, full(1, a))], null);
    return [da, mul(ct, mul(n, safeLog))];
  },
  max: (n, ct) => choose(n, ct, lt(n.src[1]!, n.src[0]!)),
  min: (n, ct) => choose(n, ct, lt(n.src[0]!, n.src[1]!)),
  lt: "nondifferentiable",
  le: "nondifferentiable",
  eq: "nondifferentiable",
  ne: "nondifferentiable",
  and: "nondifferentiable",
  or: "nondifferentiable",
  where: (n, ct) => {
    const cond = n.src[0]!;
    const zero = full(0, ct);
    return [null, where(cond, ct, zero), where(cond, zero, ct)];
  },
  sum: (n, ct) => [node("expand", [ct], { shape: n.src[0]!.shape })],
  reduce_max: (n, ct) => {
    const x = n.src[0]!;
    const isMax = eq(x, node("expand", [n], { shape: x.shape }));
    const count = node("sum", [node("cast", [isMax], { dtype: x.dtype })], { axes: n.arg.axes });
    const share = node("expand", [div(ct, count)], { shape: x.shape });
    return [where(isMax, share, full(0, x))];
  },
  // a [...b, m, k], b [...b, k, n], ct [...b, m, n]
  matmul: (n, ct) => {
    const [a, b] = [n.src[0]!, n.src[1]!];
    return [node("matmul", [ct, transposeLast(b)], null), node("matmul", [transposeLast(a), ct], null)];
  },
  conv2d: (n, ct) => conv2dVjp(n, ct),
  reshape: (n, ct) => [node("reshape", [ct], { shape: n.src[0]!.shape })],
  permute: (n, ct) => {
    const inverse = new Array<number>(n.arg.perm.length);
    n.arg.perm.forEach((p, i) => (inverse[p] = i));
    return [node("permute", [ct], { perm: inverse })];
  },
  expand: (n, ct) => [unexpand(ct, n.src[0]!.shape)],
  slice: (n, ct) => {
    const x = n.src[0]!;
    const after = x.shape.map((d, i) => d - n.arg.ends[i]!);
    return [node("pad", [ct], { before: n.arg.starts, after, value: 0 })];
  },
  pad: (n, ct) => {
    const x = n.src[0]!;
    const ends = x.shape.map((d, i) => n.arg.before[i]! + d);
    return [node("slice", [ct], { starts: n.arg.before, ends })];
  },
  concat: (n, ct) => {
    const axis = n.arg.axis;
    let offset = 0;
    return n.src.map((s) => {
      const starts = ct.shape.map((_, i) => (i === axis ? offset : 0));
      const ends = ct.shape.map((d, i) => (i === axis ? offset + s.shape[axis]! : d));
      offset += s.shape[axis]!;
      return node("slice", [ct], { starts, ends });
    });
  },
  // Out-of-range rows read as 0 in gather and are dropped by scatter_add, so each is the other's adjoint.
  gather: (n, ct) => {
    const [table, index] = [n.src[0]!, n.src[1]!];
    return [node("scatter_add", [index, ct], { rows: table.shape[0]! }), null];
  },
  scatter_add: (n, ct) => [null, node("gather", [ct, n.src[0]!], null)],
  // The output packs O and the row log-sum-exp; only O carries a cotangent onwards. FA2 backward:
  // delta = rowsum(dO * O), then one pass for dQ and one for dK, dV, recomputing probabilities.
  attention: (n, ct) => {
    const [q, k, v] = [n.src[0]!, n.src[1]!, n.src[2]!];
    const fields = n.src.slice(3);
    const [b, h, t, d1] = n.shape as [number, number, number, number];
    const d = d1 - 1;
    const column = (x: Node, from: number, to: number) =>
      node("slice", [x], { starts: [0, 0, 0, from], ends: [...x.shape.slice(0, 3), to] });
    const dO = column(ct, 0, d);
    const o = column(n, 0, d);
    const lse = node("reshape", [column(n, d, d + 1)], { shape: [b, h, t] });
    const delta = node("reshape", [node("sum", [mul(dO, o)], { axes: [3] })], { shape: [b, h, t] });
    const grads = [q, k, v, lse, dO, delta, ...fields];
    const dq = node("attention_grad_q", grads, n.arg);
    const dkv = node("attention_grad_kv", grads, n.arg);
    return [dq, column(dkv, 0, d), column(dkv, d, 2 * d), ...fields.map(() => null)];
  },
  attention_grad_q: "nondifferentiable",
  attention_grad_kv: "nondifferentiable",
};
