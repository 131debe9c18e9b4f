import type { DType } from "./dtype.ts";
import type { LayoutField, MaskExpr } from "./mask.ts";

/**
 * What the attention ops carry: the mask as a rule over layout fields (evaluated in the kernel,
 * never materialized), the score scale, and which layout fields follow q, k, v in `src` (each i32
 * [B, S]). Queries are the last T of the S key positions (T = S in training; T < S when decoding
 * against a cache).
 */
export interface AttentionArg {
  readonly mask: MaskExpr;
  readonly scale: number;
  readonly fields: readonly LayoutField[];
}

/** What a conv2d carries: one stride and one zero padding for both spatial axes, channel groups. */
export interface Conv2dArg {
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
}

/**
 * The primitive set. Every stage of the compiler keys a rule table by `Op` with a mapped type
 * (`{ [O in Op]: Rule<O> }`), so adding an op here does not type-check until every stage handles it.
 * The typed `arg` of each op is declared once, in `OpArgs`.
 */
export interface OpArgs {
  // leaves
  input: { name: string; shape: readonly number[]; dtype: DType };
  param: { path: string; shape: readonly number[]; dtype: DType };
  const: { value: number; shape: readonly number[]; dtype: DType };
  iota: { shape: readonly number[]; axis: number; dtype: DType };
  /** Counter-based RNG (Philox 4x32-10). src: [seed: u32[2]]; `stream` keeps two calls apart. */
  rand_uniform: { shape: readonly number[]; stream: number };
  rand_normal: { shape: readonly number[]; stream: number };
  // unary elementwise
  neg: null;
  exp: null;
  log: null;
  sqrt: null;
  rsqrt: null;
  tanh: null;
  sigmoid: null;
  erf: null;
  sin: null;
  cos: null;
  abs: null;
  not: null;
  cast: { dtype: DType };
  // binary elementwise (operands have equal shapes; the DSL inserts `expand` for broadcasting)
  add: null;
  sub: null;
  mul: null;
  div: null;
  pow: null;
  max: null;
  min: null;
  lt: null;
  le: null;
  eq: null;
  ne: null;
  and: null;
  or: null;
  // ternary elementwise: src [cond: bool, a, b]
  where: null;
  // reductions keep the reduced axes with size 1
  sum: { axes: readonly number[] };
  reduce_max: { axes: readonly number[] };
  /** Batched matmul: [...b, m, k] x [...b, k, n] -> [...b, m, n], batch dims equal. */
  matmul: null;
  /**
   * 2-D convolution, NHWC: src [x [N, H, W, Cin], w [KH, KW, Cin/groups, Cout]] -> [N, Ho, Wo, Cout],
   * Ho = floor((H + 2 padding - KH) / stride) + 1; zero padding on every side.
   */
  conv2d: Conv2dArg;
  // movement: views, lowered to index arithmetic in the consumer
  reshape: { shape: readonly number[] };
  permute: { perm: readonly number[] };
  expand: { shape: readonly number[] };
  slice: { starts: readonly number[]; ends: readonly number[] };
  pad: { before: readonly number[]; after: readonly number[]; value: number };
  concat: { axis: number };
  /** Rows of a table: src [table: [v, ...rest], index: int[...i]] -> [...i, ...rest]. */
  gather: null;
  /** Adjoint of gather: src [index: int[...i], updates: [...i, ...rest]] -> [rows, ...rest]. */
  scatter_add: { rows: number };
  /**
   * Flash attention: src [q [B,H,T,D], k [B,H,S,D], v [B,H,S,D], ...fields] -> [B,H,T,D+1]: the
   * output and, in the last column, each row's log-sum-exp (what the backward pass needs).
   */
  attention: AttentionArg;
  /** dQ: src [q, k, v, lse [B,H,T], dO [B,H,T,D], delta [B,H,T], ...fields] -> [B,H,T,D]. */
  attention_grad_q: AttentionArg;
  /** dK and dV side by side: same src as attention_grad_q -> [B,H,S,2D]. */
  attention_grad_kv: AttentionArg;
}

export type Op = keyof OpArgs;

/** What passes ask of an op instead of matching op names. */
export type OpKind =
  | "leaf"
  | "random"
  | "elementwise"
  | "reduce"
  | "contraction"
  /** A convolution: a contraction whose operand index is a window of the input (no plain matmul). */
  | "convolution"
  | "movement"
  | "index"
  | "attention";

export interface OpInfo {
  kind: OpKind;
  /** Number of sources, or "many" (concat). */
  arity: number | "many";
  /** False for ops whose output carries no gradient (comparisons, RNG, iota, integer math). */
  differentiable: boolean;
  /** A one-line description for the printer and `explain`. */
  doc: string;
}

const unary = (doc: string, differentiable = true): OpInfo => ({
  kind: "elementwise",
  arity: 1,
  differentiable,
  doc,
});
const binary = (doc: string, differentiable = true): OpInfo => ({
  kind: "elementwise",
  arity: 2,
  differentiable,
  doc,
});

export const OPS: { readonly [O in Op]: OpInfo } = {
  input: { kind: "leaf", arity: 0, differentiable: false, doc: "a named input buffer" },
  param: { kind: "leaf", arity: 0, differentiable: false, doc: "a trainable parameter" },
  const: { kind: "leaf", arity: 0, differentiable: false, doc: "a filled constant" },
  iota: { kind: "leaf", arity: 0, differentiable: false, doc: "the index along one axis" },
  rand_uniform: { kind: "random", arity: 1, differentiable: false, doc: "uniform [0, 1) from Philox" },
  rand_normal: { kind: "random", arity: 1, differentiable: false, doc: "standard normal from Philox" },
  neg: unary("-x"),
  exp: unary("e^x"),
  log: unary("ln x"),
  sqrt: unary("sqrt x"),
  rsqrt: unary("1 / sqrt x"),
  tanh: unary("tanh x"),
  sigmoid: unary("1 / (1 + e^-x)"),
  erf: unary("the error function"),
  sin: unary("sin x"),
  cos: unary("cos x"),
  abs: unary("|x|"),
  not: unary("logical not", false),
  cast: unary("convert the dtype"),
  add: binary("a + b"),
  sub: binary("a - b"),
  mul: binary("a * b"),
  div: binary("a / b"),
  pow: binary("a ^ b"),
  max: binary("elementwise max"),
  min: binary("elementwise min"),
  lt: binary("a < b", false),
  le: binary("a <= b", false),
  eq: binary("a == b", false),
  ne: binary("a != b", false),
  and: binary("logical and", false),
  or: binary("logical or", false),
  where: { kind: "elementwise", arity: 3, differentiable: true, doc: "cond ? a : b" },
  sum: { kind: "reduce", arity: 1, differentiable: true, doc: "sum over axes" },
  reduce_max: { kind: "reduce", arity: 1, differentiable: true, doc: "max over axes" },
  matmul: { kind: "contraction", arity: 2, differentiable: true, doc: "batched matrix product" },
  conv2d: { kind: "convolution", arity: 2, differentiable: true, doc: "2-D convolution (NHWC)" },
  reshape: { kind: "movement", arity: 1, differentiable: true, doc: "same elements, new shape" },
  permute: { kind: "movement", arity: 1, differentiable: true, doc: "reorder axes" },
  expand: { kind: "movement", arity: 1, differentiable: true, doc: "broadcast size-1 axes" },
  slice: { kind: "movement", arity: 1, differentiable: true, doc: "a box of the input" },
  pad: { kind: "movement", arity: 1, differentiable: true, doc: "surround with a value" },
  concat: { kind: "movement", arity: "many", differentiable: true, doc: "join along an axis" },
  gather: { kind: "index", arity: 2, differentiable: true, doc: "rows of a table by index" },
  scatter_add: { kind: "index", arity: 2, differentiable: true, doc: "add rows into a table by index" },
  attention: { kind: "attention", arity: "many", differentiable: true, doc: "masked attention (flash)" },
  // Second derivatives through attention are not supported: the backward ops have no VJP.
  attention_grad_q: {
    kind: "attention",
    arity: "many",
    differentiable: false,
    doc: "attention backward: dQ",
  },
  attention_grad_kv: {
    kind: "attention",
    arity: "many",
    differentiable: false,
    doc: "attention backward: dK, dV",
  },
};

export const ALL_OPS = Object.keys(OPS) as Op[];
