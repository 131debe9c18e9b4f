/**
 * The case table of the kernel conformance suite (tests/conformance_test.ts): per op, graphs built
 * from bare IR on shapes that are not multiples of the workgroup sizes (256, 64) or matmul tiles.
 * Not a test file itself: the suite imports it.
 */
import {
  type DType,
  type LayoutField,
  type MaskExpr,
  type Node,
  node,
  type Op,
  type OpArgs,
  size,
} from "../compiler/ir/mod.ts";

export type Sampler = (count: number, rand: () => number) => number[];

/** |gpu - ref| <= abs + rel * |ref|, for f32 outputs and gradients; integer and bool are exact. */
export interface Tolerance {
  readonly abs: number;
  readonly rel: number;
  /** Why a case needs more than the default. */
  readonly why: string;
}

export interface Case {
  readonly name: string;
  /** The outputs to check; `f` makes the leaves and records their values. */
  readonly build: (f: Fixture) => Node | readonly Node[];
  readonly tol?: Tolerance;
  /**
   * Whether the params' gradients are checked: by default yes, and they must not all be zero (a
   * vacuous check); "zero" where they are zero by construction; false to check the forward only
   * (say why next to the case).
   */
  readonly grads?: false | "zero";
}

/** The RNG seed every case shares: [key, offset]. */
const SEED = [0x2545f491, 7] as const;

/** Leaves of one batch of cases and their values. Float values are f32-rounded, as the GPU sees them. */
export class Fixture {
  readonly params: Record<string, number[]> = {};
  readonly inputs: Record<string, number[]> = {};
  /** The case each parameter belongs to, by path. */
  readonly owner = new Map<string, string>();
  caseName = "";
  #count = 0;

  constructor(readonly rand: () => number) {}

  param(shape: readonly number[], sample: Sampler = uniform(-1, 1)): Node {
    const path = `${this.caseName}.p${this.#count++}`;
    this.params[path] = sample(size(shape), this.rand).map(Math.fround);
    this.owner.set(path, this.caseName);
    return node("param", [], { path, shape, dtype: "f32" });
  }

  input(shape: readonly number[], dtype: DType, sample: Sampler): Node {
    const name = `${this.caseName}.in${this.#count++}`;
    const values = sample(size(shape), this.rand);
    this.inputs[name] = dtype === "f32" ? values.map(Math.fround) : values;
    return node("input", [], { name, shape, dtype });
  }

  /** The u32[2] seed input named "seed", as the executor expects it. */
  seed(): Node {
    this.inputs.seed = [...SEED];
    return node("input", [], { name: "seed", shape: [2], dtype: "u32" });
  }
}

/** mulberry32: a small seeded PRNG, so every run checks the same points. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// samplers

const fill = (f: (rand: () => number) => number): Sampler => (count, rand) =>
  Array.from({ length: count }, () => f(rand));
export const uniform = (lo: number, hi: number): Sampler => fill((rand) => lo + (hi - lo) * rand());
/** Integers in [lo, hi]. */
export const ints = (lo: number, hi: number): Sampler =>
  fill((rand) => lo + Math.floor((hi - lo + 1) * rand()));
/** |x| in [lo, hi] with a random sign: keeps abs off its kink and divisors off zero. */
const awayFromZero = (lo: number, hi: number): Sampler =>
  fill((rand) => (rand() < 0.5 ? -1 : 1) * (lo + (hi - lo) * rand()));
/** Multiples of 1/4 in [-2, 2): many exact ties between two such tensors. */
const onGrid: Sampler = fill((rand) => Math.floor(rand() * 16 - 8) * 0.25);
/** Values at least 1e-3 apart, shuffled: reduce_max has one argmax, so its gradient is smooth. */
const distinct: Sampler = (count, rand) => {
  const values = Array.from({ length: count }, (_, i) => (i - count / 2) * 2e-3 + 1e-4 * rand());
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return values;
};
const bits: Sampler = fill((rand) => +(rand() < 0.5));
/** Picks from `values`: edge cases mixed into ordinary ones. */
const oneOf = (values: readonly number[]): Sampler =>
  fill((rand) => values[Math.floor(rand() * values.length)]!);

// ---------------------------------------------------------------------------------------------
// IR builders

type PlainOp = { [O in Op]: OpArgs[O] extends null ? O : never }[Op];
const ap = (op: PlainOp, ...src: Node[]): Node => node(op, src, null);
const full = (value: number, shape: readonly number[], dtype: DType = "f32") =>
  node("const", [], { value, shape, dtype });
const sum = (x: Node, axes: readonly number[]) => node("sum", [x], { axes });
const max = (x: Node, axes: readonly number[]) => node("reduce_max", [x], { axes });
const permute = (x: Node, perm: readonly number[]) => node("permute", [x], { perm });
const expand = (x: Node, shape: readonly number[]) => node("expand", [x], { shape });
const reshape = (x: Node, shape: readonly number[]) => node("reshape", [x], { shape });
const cast = (x: Node, dtype: DType) => node("cast", [x], { dtype });
const matmul = (a: Node, b: Node) => node("matmul", [a, b], null);
const conv = (x: Node, w: Node, stride: number, padding: number, groups: number) =>
  node("conv2d", [x, w], { stride, padding, groups });

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const U32_MAX = 4294967295;

/** Elementwise length: four workgroups of 256 and a bit. */
const E = 1031;

function floatUnary(op: PlainOp, sample: Sampler): Case[] {
  return [
    { name: `[${E}]`, build: (f) => ap(op, f.param([E], sample)) },
    // The transpose makes the kernel divide its flat index into axes.
    { name: "[33, 65] of a transpose", build: (f) => ap(op, permute(f.param([65, 33], sample), [1, 0])) },
  ];
}

function floatBinary(op: PlainOp, sa: Sampler, sb: Sampler): Case[] {
  return [
    { name: `[${E}]`, build: (f) => ap(op, f.param([E], sa), f.param([E], sb)) },
    {
      name: "[33, 65] with [33, 1] broadcast",
      build: (f) => ap(op, f.param([33, 65], sa), expand(f.param([33, 1], sb), [33, 65])),
    },
  ];
}

function intBinary(op: PlainOp, i32: [Sampler, Sampler], u32: [Sampler, Sampler]): Case[] {
  return [
    { name: `i32 [${E}]`, build: (f) => ap(op, f.input([E], "i32", i32[0]), f.input([E], "i32", i32[1])) },
    {
      name: "u32 [7, 13]",
      build: (f) => ap(op, f.input([7, 13], "u32", u32[0]), f.input([7, 13], "u32", u32[1])),
    },
  ];
}

function comparison(op: PlainOp): Case[] {
  return [
    {
      name: "f32 on a grid (ties)",
      build: (f) => ap(op, f.input([E], "f32", onGrid), f.input([E], "f32", onGrid)),
    },
    {
      name: "i32 [7, 13]",
      build: (f) => ap(op, f.input([7, 13], "i32", ints(-3, 3)), f.input([7, 13], "i32", ints(-3, 3))),
    },
    {
      name: "u32 above 2^31",
      build: (f) => {
        const s = oneOf([0, 1, 2147483648, U32_MAX]);
        return ap(op, f.input([300], "u32", s), f.input([300], "u32", s));
      },
    },
    { name: "bool", build: (f) => ap(op, f.input([301], "bool", bits), f.input([301], "bool", bits)) },
  ];
}

function reduction(op: "sum" | "reduce_max", sample: Sampler): Case[] {
  const r = op === "sum" ? sum : max;
  return [
    { name: "[300, 70] over 0", build: (f) => r(f.param([300, 70], sample), [0]) },
    { name: "[300, 70] over 1", build: (f) => r(f.param([300, 70], sample), [1]) },
    // Few outputs, long rows: the workgroup-tree variant.
    { name: "[4, 5000] over 1", build: (f) => r(f.param([4, 5000], sample), [1]) },
    {
      name: "[5000, 3] over 0 (tree, strided)",
      build: (f) => r(f.param([5000, 3], sample), [0]),
    },
    { name: "[17, 300, 5] over the middle", build: (f) => r(f.param([17, 300, 5], sample), [1]) },
    { name: "[3, 17, 9, 31] over 1 and 3", build: (f) => r(f.param([3, 17, 9, 31], sample), [1, 3]) },
    { name: "[33, 65] over both", build: (f) => r(f.param([33, 65], sample), [0, 1]) },
    // Many outputs, short rows: one invocation per output.
    { name: "[2000, 3] over 1", build: (f) => r(f.param([2000, 3], sample), [1]) },
    {
      name: "[9, 31] of a transpose over 0",
      build: (f) => r(permute(f.param([31, 9], sample), [1, 0]), [0]),
    },
    {
      name: "i32 [300, 7] over 0",
      build: (f) => r(f.input([300, 7], "i32", ints(-1000, -1)), [0]),
    },
    { name: "i32 [5, 700] over 1 (tree)", build: (f) => r(f.input([5, 700], "i32", ints(-1000, -1)), [1]) },
    { name: "u32 [13, 7] over 1", build: (f) => r(f.input([13, 7], "u32", ints(0, 1e6)), [1]) },
  ];
}

/** Softmax over the last axis of [rows, cols]: reduce_max, exp, sum and div in one graph. */
function softmax(x: Node): Node {
  const [rows, cols] = [x.shape[0]!, x.shape[1]!];
  const shifted = ap("sub", x, expand(max(x, [1]), [rows, cols]));
  const e = ap("exp", shifted);
  return ap("div", e, expand(sum(e, [1]), [rows, cols]));
}

/** attention(q, k, v) with q [B, H, T, D] and k, v [B, H, S, D] params; output [B, H, T, D + 1]. */
function attention(
  f: Fixture,
  [b, h, t, d]: readonly [number, number, number, number],
  s: number,
  mask: MaskExpr,
  fields: readonly Node[] = [],
  names: readonly LayoutField[] = [],
): Node {
  const [q, k, v] = [f.param([b, h, t, d]), f.param([b, h, s, d]), f.param([b, h, s, d])];
  return node("attention", [q, k, v, ...fields], { mask, scale: 1 / Math.sqrt(d), fields: names });
}

/** Columns [from, to) of the last axis. */
function columns(x: Node, from: number, to: number): Node {
  return node("slice", [x], { starts: x.shape.map(() => 0).with(-1, from), ends: x.shape.with(-1, to) });
}

/** The attention output without its log-sum-exp column (the part gradients flow through). */
const attentionOutput = (x: Node) => columns(x, 0, x.shape[3]! - 1);

/** Causal attention within documents of 30, 25 and 5 positions, then 10 of padding. */
function documentAttention(f: Fixture, shape: readonly [number, number, number, number]): Node {
  const t = shape[2];
  const docOf = (i: number) => (i < 30 ? 0 : i < 55 ? 1 : i < 60 ? 2 : -1);
  const doc = f.input([shape[0], t], "i32", (count) => Array.from({ length: count }, (_, i) => docOf(i % t)));
  const mask: MaskExpr = { kind: "and", a: { kind: "causal" }, b: { kind: "sameDocument" } };
  return attention(f, shape, t, mask, [doc], ["doc"]);
}

/** One backward op of causal attention at a random dO, with delta = rowsum(dO * O) as autodiff builds it. */
function attentionBackward(f: Fixture, op: "attention_grad_q" | "attention_grad_kv"): Node {
  const forward = attention(f, [2, 3, 17, 9], 17, { kind: "causal" });
  const [q, k, v] = forward.src as [Node, Node, Node];
  const lse = reshape(columns(forward, 9, 10), [2, 3, 17]);
  const dO = f.input([2, 3, 17, 9], "f32", uniform(-1, 1));
  const delta = reshape(sum(ap("mul", dO, attentionOutput(forward)), [3]), [2, 3, 17]);
  return node(op, [q, k, v, lse, dO, delta], forward.arg as OpArgs["attention"]);
}

export const CASES: { readonly [O in Op]: readonly Case[] } = {
  input: [
    { name: "f32 output as is", build: (f) => f.input([E], "f32", uniform(-1, 1)) },
    { name: "i32 output as is", build: (f) => f.input([7, 13], "i32", ints(-1e6, 1e6)) },
    { name: "f32 into exp", build: (f) => ap("exp", f.input([33, 17], "f32", uniform(-2, 2))) },
  ],
  param: [
    { name: "output as is (a copy)", build: (f) => f.param([E]) },
    { name: "[33, 65] through neg", build: (f) => ap("neg", f.param([33, 65])) },
  ],
  const: [
    { name: "f32 output as is", build: () => full(0.375, [7, 13]) },
    { name: "f32 times a param", build: (f) => ap("mul", f.param([E]), full(-2.5, [E])) },
    {
      name: "i32 -5 plus an input",
      build: (f) => ap("add", f.input([300], "i32", ints(-9, 9)), full(-5, [300], "i32")),
    },
    {
      name: "u32 4e9",
      build: (f) => ap("max", f.input([300], "u32", ints(0, U32_MAX)), full(4e9, [300], "u32")),
    },
    {
      name: "bool and a mask",
      build: (f) => ap("and", f.input([300], "bool", bits), full(1, [300], "bool")),
    },
  ],
  iota: [
    { name: "f32 [7, 13] axis 1", build: () => node("iota", [], { shape: [7, 13], axis: 1, dtype: "f32" }) },
    {
      name: "i32 [3, 17, 9] axis 0",
      build: () => node("iota", [], { shape: [3, 17, 9], axis: 0, dtype: "i32" }),
    },
    {
      name: "u32 [3, 17, 9] axis 2",
      build: () => node("iota", [], { shape: [3, 17, 9], axis: 2, dtype: "u32" }),
    },
    {
      name: "causal mask on a param",
      build: (f) => {
        const [row, col] = [0, 1].map((axis) => node("iota", [], { shape: [33, 33], axis, dtype: "i32" }));
        return ap("where", ap("le", col!, row!), f.param([33, 33]), full(-1e9, [33, 33]));
      },
    },
  ],
  rand_uniform: [
    {
      name: `[${E}] stream 0`,
      build: (f) => node("rand_uniform", [f.seed()], { shape: [E], stream: 0 }),
      tol: { abs: 1e-7, rel: 0, why: "the top 24 bits scaled by 2^-24 are exact in f32" },
    },
    {
      name: "[3, 17, 9] of a transpose, stream 3",
      build: (f) => permute(node("rand_uniform", [f.seed()], { shape: [9, 17, 3], stream: 3 }), [2, 1, 0]),
      tol: { abs: 1e-7, rel: 0, why: "the top 24 bits scaled by 2^-24 are exact in f32" },
    },
    {
      name: "dropout of a param",
      build: (f) => {
        const keep = ap("lt", node("rand_uniform", [f.seed()], { shape: [E], stream: 5 }), full(0.7, [E]));
        return ap("where", keep, ap("div", f.param([E]), full(0.7, [E])), full(0, [E]));
      },
    },
  ],
  rand_normal: [
    {
      name: `[${E}] stream 1`,
      build: (f) => node("rand_normal", [f.seed()], { shape: [E], stream: 1 }),
      tol: { abs: 2e-5, rel: 0, why: "f32 log and cos of Box-Muller amplify ulps near u1 = 0" },
    },
    {
      name: "noise on a param",
      build: (f) => {
        const noise = node("rand_normal", [f.seed()], { shape: [17, 61], stream: 2 });
        return ap("add", f.param([17, 61]), ap("mul", noise, f.param([17, 61])));
      },
      tol: { abs: 2e-5, rel: 1e-5, why: "f32 log and cos of Box-Muller amplify ulps near u1 = 0" },
    },
  ],
  neg: [
    ...floatUnary("neg", uniform(-3, 3)),
    { name: "i32", build: (f) => ap("neg", f.input([E], "i32", ints(-1e6, 1e6))) },
    {
      name: "u32 (wraps)",
      build: (f) => ap("neg", f.input([300], "u32", oneOf([0, 1, 5, 2147483648, U32_MAX]))),
    },
  ],
  exp: floatUnary("exp", uniform(-4, 4)),
  log: floatUnary("log", uniform(0.05, 20)),
  sqrt: floatUnary("sqrt", uniform(0.01, 30)),
  rsqrt: floatUnary("rsqrt", uniform(0.05, 30)),
  tanh: floatUnary("tanh", uniform(-20, 20)),
  sigmoid: floatUnary("sigmoid", uniform(-20, 20)),
  erf: floatUnary("erf", uniform(-4, 4)),
  sin: floatUnary("sin", uniform(-6, 6)),
  cos: floatUnary("cos", uniform(-6, 6)),
  abs: [
    ...floatUnary("abs", awayFromZero(0.01, 3)),
    { name: "i32", build: (f) => ap("abs", f.input([E], "i32", ints(-1e6, 1e6))) },
    { name: "u32", build: (f) => ap("abs", f.input([300], "u32", oneOf([0, 7, 2147483648, U32_MAX]))) },
  ],
  not: [
    { name: `[${E}]`, build: (f) => ap("not", f.input([E], "bool", bits)) },
    {
      name: "of a comparison",
      build: (f) => ap("not", ap("lt", f.param([7, 13]), full(0, [7, 13]))),
    },
  ],
  cast: [
    { name: "f32 -> i32 (truncates)", build: (f) => cast(f.input([E], "f32", uniform(-1000, 1000)), "i32") },
    { name: "f32 -> u32", build: (f) => cast(f.input([E], "f32", uniform(0, 4e9)), "u32") },
    { name: "f32 -> u32 of negatives", build: (f) => cast(f.input([300], "f32", uniform(-1000, 0)), "u32") },
    { name: "i32 -> f32", build: (f) => cast(f.input([E], "i32", ints(-1e6, 1e6)), "f32") },
    { name: "u32 -> f32", build: (f) => cast(f.input([300], "u32", ints(0, U32_MAX)), "f32") },
    { name: "i32 -> u32 (wraps)", build: (f) => cast(f.input([300], "i32", ints(-1e6, 1e6)), "u32") },
    { name: "u32 -> i32 (wraps)", build: (f) => cast(f.input([300], "u32", ints(0, U32_MAX)), "i32") },
    { name: "bool -> f32", build: (f) => cast(f.input([300], "bool", bits), "f32") },
    { name: "bool -> i32", build: (f) => cast(f.input([300], "bool", bits), "i32") },
    { name: "bool -> u32", build: (f) => cast(f.input([300], "bool", bits), "u32") },
    { name: "f32 -> bool", build: (f) => cast(f.input([300], "f32", oneOf([0, -0.5, 1e-30, 3])), "bool") },
    { name: "i32 -> bool", build: (f) => cast(f.input([300], "i32", ints(-2, 2)), "bool") },
    { name: "u32 -> bool", build: (f) => cast(f.input([300], "u32", oneOf([0, 1, U32_MAX])), "bool") },
    { name: "f32 -> f16 -> f32", build: (f) => cast(cast(f.param([33, 17]), "f16"), "f32") },
    { name: "f32 -> f32", build: (f) => cast(f.param([E]), "f32") },
    // The gradient stops at an integer cast: the param's is zero.
    {
      name: "f32 -> i32 -> f32",
      build: (f) => cast(cast(f.param([300], uniform(-9, 9)), "i32"), "f32"),
      grads: "zero",
    },
  ],
  add: [
    ...floatBinary("add", uniform(-3, 3), uniform(-3, 3)),
    ...intBinary("add", [ints(I32_MIN, I32_MAX), ints(I32_MIN, I32_MAX)], [
      ints(0, U32_MAX),
      ints(0, U32_MAX),
    ]),
  ],
  sub: [
    ...floatBinary("sub", uniform(-3, 3), uniform(-3, 3)),
    ...intBinary("sub", [ints(I32_MIN, I32_MAX), ints(I32_MIN, I32_MAX)], [ints(0, 1000), ints(0, 2000)]),
  ],
  mul: [
    ...floatBinary("mul", uniform(-3, 3), uniform(-3, 3)),
    ...intBinary("mul", [ints(-1e6, 1e6), ints(-1e6, 1e6)], [ints(0, U32_MAX), ints(0, U32_MAX)]),
  ],
  div: [
    ...floatBinary("div", uniform(-3, 3), awayFromZero(0.3, 3)),
    ...intBinary("div", [ints(-1000, 1000), ints(-9, 9)], [ints(0, U32_MAX), ints(0, 9)]),
  ],
  pow: [
    ...floatBinary("pow", uniform(0.2, 4), uniform(-2, 2)),
    // A negative base only with an integer exponent, where the real power exists.
    {
      name: "negative base, exponent 3",
      build: (f) => ap("pow", f.param([300], awayFromZero(0.3, 2)), full(3, [300])),
      tol: { abs: 1e-5, rel: 1e-5, why: "default; WGSL pow of a negative base is undefined, see the report" },
    },
  ],
  max: [
    ...floatBinary("max", onGrid, onGrid),
    ...intBinary("max", [ints(-9, 9), ints(-9, 9)], [ints(0, 9), ints(0, 9)]),
  ],
  min: [
    ...floatBinary("min", onGrid, onGrid),
    ...intBinary("min", [ints(-9, 9), ints(-9, 9)], [ints(0, 9), ints(0, 9)]),
  ],
  lt: comparison("lt"),
  le: comparison("le"),
  eq: comparison("eq"),
  ne: comparison("ne"),
  and: [{ name: `[${E}]`, build: (f) => ap("and", f.input([E], "bool", bits), f.input([E], "bool", bits)) }],
  or: [{ name: `[${E}]`, build: (f) => ap("or", f.input([E], "bool", bits), f.input([E], "bool", bits)) }],
  where: [
    { name: `f32 [${E}]`, build: (f) => ap("where", f.input([E], "bool", bits), f.param([E]), f.param([E])) },
    {
      name: "f32 [33, 65] of a broadcast mask",
      build: (f) =>
        ap("where", expand(f.input([1, 65], "bool", bits), [33, 65]), f.param([33, 65]), full(0, [33, 65])),
    },
    {
      name: "i32",
      build: (f) =>
        ap("where", f.input([300], "bool", bits), f.input([300], "i32", ints(-9, 9)), full(-7, [300], "i32")),
    },
    {
      name: "bool",
      build: (f) =>
        ap("where", f.input([300], "bool", bits), f.input([300], "bool", bits), f.input([300], "bool", bits)),
    },
  ],
  sum: reduction("sum", uniform(-1, 1)),
  reduce_max: reduction("reduce_max", distinct),
  // Every matmul kernel costs one to two seconds of LLVM time on a cold lavapipe, so gradients are
  // checked on two cases whose backward adds patterns (operands transposed in place, a product
  // larger than one tile, an epilogue, a sum over a broadcast batch); the rest check the forward.
  // Tiles: 64 x 128 (cpu register), 64 and 128 (gpu shared); k unrolls by 4 and steps by 8 or 16.
  matmul: [
    {
      // A layer: bias and activation are the epilogue a fusing lowering folds into the matmul.
      name: "tanh([70, 65] x [65, 130] + bias)",
      build: (f) => {
        const bias = expand(f.param([1, 130]), [70, 130]);
        return ap("tanh", ap("add", matmul(f.param([70, 65]), f.param([65, 130])), bias));
      },
    },
    {
      name: "batch 3 of [17, 9] (transposed) x [9, 31] (broadcast)",
      build: (f) => matmul(permute(f.param([17, 3, 9]), [1, 0, 2]), expand(f.param([1, 9, 31]), [3, 9, 31])),
    },
    { name: "[7, 13] x [13, 5]", build: (f) => matmul(f.param([7, 13]), f.param([13, 5])), grads: false },
    {
      name: "a broadcast column [7, 1] -> [7, 13] x [13, 5]",
      build: (f) => matmul(expand(f.param([7, 1]), [7, 13]), f.param([13, 5])),
      grads: false,
    },
    {
      name: "[2, 3, 5, 7] x [2, 3, 7, 4]",
      build: (f) => matmul(f.param([2, 3, 5, 7]), f.param([2, 3, 7, 4])),
      grads: false,
    },
    { name: "[1, 1] x [1, 1]", build: (f) => matmul(f.param([1, 1]), f.param([1, 1])), grads: false },
    {
      name: "[4, 300] x [300, 6] (long k)",
      build: (f) => matmul(f.param([4, 300]), f.param([300, 6])),
      grads: false,
    },
    {
      // batch * m * n >= 2048^2: the gpu class picks its large-tile variant.
      name: "[2049, 3] x [3, 2050] (a large product)",
      build: (f) => matmul(f.param([2049, 3]), f.param([3, 2050])),
      grads: false,
    },
    {
      name: "both operands transposed",
      build: (f) => matmul(permute(f.param([13, 7]), [1, 0]), permute(f.param([5, 13]), [1, 0])),
      grads: false,
    },
    {
      name: "a matmul of a matmul",
      build: (f) => matmul(matmul(f.param([9, 11]), f.param([11, 13])), f.param([13, 6])),
      grads: false,
    },
  ],
  // The conv kernels (implicit GEMM on gpu, direct on cpu): shapes off the tile sizes, stride, padding,
  // groups; gradients for the first two (dx a conv of the flipped kernel, dilated for stride 2; dw a
  // conv, or a matmul of the window view for stride 2 and groups) and the 1x1 (matmuls).
  conv2d: [
    {
      // A U-Net block's conv: bias and SiLU-like activation are the epilogue fused into the kernel.
      name: "tanh(conv 3x3 pad 1 [3, 9, 7, 5] -> 6 + bias)",
      build: (f) => {
        const y = conv(f.param([3, 9, 7, 5]), f.param([3, 3, 5, 6]), 1, 1, 1);
        return ap("tanh", ap("add", y, expand(reshape(f.param([6]), [1, 1, 1, 6]), [3, 9, 7, 6])));
      },
    },
    {
      name: "stride 2, pad 1, groups 2, [2, 9, 8, 4] -> 6",
      build: (f) => conv(f.param([2, 9, 8, 4]), f.param([3, 3, 2, 6]), 2, 1, 2),
    },
    {
      name: "depthwise 5x5, pad 2, [1, 11, 13, 8]",
      build: (f) => conv(f.param([1, 11, 13, 8]), f.param([5, 5, 1, 8]), 1, 2, 8),
      grads: false,
    },
    {
      // Lowered as a matmul over the pixels (passes/pointwise_conv.ts), its gradients too.
      name: "1x1 (a matmul over pixels) [4, 6, 6, 33] -> 70",
      build: (f) => conv(f.param([4, 6, 6, 33]), f.param([1, 1, 33, 70]), 1, 0, 1),
    },
    {
      // Padded, so not a plain matmul: the conv kernel, with a 1x1 window.
      name: "1x1 pad 1 [2, 3, 4, 5] -> 3",
      build: (f) => conv(f.param([2, 3, 4, 5]), f.param([1, 1, 5, 3]), 1, 1, 1),
      grads: false,
    },
  ],
  reshape: [
    { name: "[7, 13] -> [13, 7] output as is", build: (f) => reshape(f.param([7, 13]), [13, 7]) },
    // A reshape of a permute feeding an elementwise op: the flat index goes through div/mod twice.
    {
      name: "of a permute, into add",
      build: (f) =>
        ap("add", reshape(permute(f.param([3, 5, 7, 2]), [2, 0, 3, 1]), [7, 30]), f.param([7, 30])),
    },
    { name: "a full sum to a scalar []", build: (f) => reshape(sum(f.param([33, 65]), [0, 1]), []) },
    { name: "i32 [300] -> [20, 15]", build: (f) => reshape(f.input([300], "i32", ints(-9, 9)), [20, 15]) },
  ],
  permute: [
    {
      name: "rank 4 [3, 5, 7, 2] by [2, 0, 3, 1]",
      build: (f) => permute(f.param([3, 5, 7, 2]), [2, 0, 3, 1]),
    },
    { name: "[33, 65] transpose into exp", build: (f) => ap("exp", permute(f.param([33, 65]), [1, 0])) },
    {
      name: "u32 [3, 17, 9] by [1, 2, 0]",
      build: (f) => permute(f.input([3, 17, 9], "u32", ints(0, 1e6)), [1, 2, 0]),
    },
  ],
  expand: [
    { name: "[1, 13] -> [7, 13]", build: (f) => expand(f.param([1, 13]), [7, 13]) },
    { name: "[3, 1, 5, 1] -> [3, 4, 5, 6]", build: (f) => expand(f.param([3, 1, 5, 1]), [3, 4, 5, 6]) },
    { name: `[1] -> [${E}] into mul`, build: (f) => ap("mul", expand(f.param([1]), [E]), f.param([E])) },
    { name: "i32 [7, 1] -> [7, 13]", build: (f) => expand(f.input([7, 1], "i32", ints(-9, 9)), [7, 13]) },
  ],
  slice: [
    {
      name: "[33, 65] box",
      build: (f) => node("slice", [f.param([33, 65])], { starts: [3, 10], ends: [30, 64] }),
    },
    {
      name: "[3, 17, 9] middle into sin",
      build: (f) => ap("sin", node("slice", [f.param([3, 17, 9])], { starts: [1, 0, 2], ends: [3, 17, 7] })),
    },
    // Forward only: the loss would need an empty input, and Deno 2.9.6 panics on an empty
    // queue.writeBuffer (the executor does not skip those yet).
    {
      name: "an empty box [3, 0]",
      build: (f) => node("slice", [f.param([7, 13])], { starts: [2, 5], ends: [5, 5] }),
      grads: false,
    },
    {
      name: "i32 rows",
      build: (f) =>
        node("slice", [f.input([20, 15], "i32", ints(-9, 9))], { starts: [5, 0], ends: [12, 15] }),
    },
  ],
  pad: [
    {
      name: "[7, 13] by [1, 2] / [3, 0] with 0.5",
      build: (f) => node("pad", [f.param([7, 13])], { before: [1, 2], after: [3, 0], value: 0.5 }),
    },
    {
      name: "[3, 17, 9] on the last axis into a sum",
      build: (f) =>
        sum(node("pad", [f.param([3, 17, 9])], { before: [0, 0, 4], after: [0, 0, 3], value: 0 }), [2]),
    },
    {
      name: "i32 with -1",
      build: (f) =>
        node("pad", [f.input([5, 6], "i32", ints(0, 9))], { before: [2, 0], after: [1, 5], value: -1 }),
    },
  ],
  concat: [
    {
      name: "three along axis 1",
      build: (f) => node("concat", [f.param([7, 3]), f.param([7, 5]), f.param([7, 6])], { axis: 1 }),
    },
    {
      name: "three along axis 0 of views",
      build: (f) =>
        node("concat", [
          permute(f.param([13, 4]), [1, 0]),
          ap("exp", f.param([9, 13])),
          node("pad", [f.param([2, 10])], { before: [0, 1], after: [0, 2], value: 0 }),
        ], { axis: 0 }),
    },
    {
      name: "i32 two along the middle",
      build: (f) =>
        node("concat", [f.input([3, 2, 5], "i32", ints(-9, 9)), f.input([3, 7, 5], "i32", ints(-9, 9))], {
          axis: 1,
        }),
    },
  ],
  gather: [
    {
      name: "[50, 7] rows by i32 [3, 11] with out-of-range",
      build: (f) =>
        node("gather", [f.param([50, 7]), f.input([3, 11], "i32", oneOf([-1, 0, 3, 49, 50, 1000, 7]))], null),
    },
    {
      name: `[40] by u32 [${E}]`,
      build: (f) => node("gather", [f.param([40]), f.input([E], "u32", ints(0, 45))], null),
    },
    {
      name: "[10, 3, 5] by i32 [17]",
      build: (f) => node("gather", [f.param([10, 3, 5]), f.input([17], "i32", ints(-2, 11))], null),
    },
    {
      name: "i32 table",
      build: (f) =>
        node("gather", [f.input([9, 4], "i32", ints(-99, 99)), f.input([13], "i32", ints(-1, 9))], null),
    },
  ],
  scatter_add: [
    {
      name: "[37, 6] into 9 rows, repeats and out-of-range",
      build: (f) => node("scatter_add", [f.input([37], "i32", ints(-2, 10)), f.param([37, 6])], { rows: 9 }),
    },
    {
      name: "u32 [3, 4] index, [3, 4, 5] updates",
      build: (f) =>
        node("scatter_add", [f.input([3, 4], "u32", ints(0, 6)), f.param([3, 4, 5])], { rows: 5 }),
    },
    {
      name: "[300] into 7 rows of scalars",
      build: (f) => node("scatter_add", [f.input([300], "i32", ints(0, 6)), f.param([300])], { rows: 7 }),
    },
    {
      // More rows than one cpu block holds (kernels/scatter.ts scatterRowsPerThread): several row
      // blocks, a part-filled last block, and indices past the table and below it.
      name: "[90, 5] into 150 rows, several row blocks",
      build: (f) =>
        node("scatter_add", [f.input([90], "i32", ints(-3, 160)), f.param([90, 5])], { rows: 150 }),
    },
    {
      name: "i32 updates",
      build: (f) =>
        node("scatter_add", [f.input([40], "i32", ints(0, 4)), f.input([40, 3], "i32", ints(-99, 99))], {
          rows: 4,
        }),
    },
  ],
  attention: [
    {
      name: "causal, [2, 3, 17, 9]",
      build: (f) => attentionOutput(attention(f, [2, 3, 17, 9], 17, { kind: "causal" })),
    },
    {
      // Three documents and padding: padded queries attend nothing (o = 0, lse = EMPTY_ROW_LSE).
      name: "causal documents with padding, [1, 2, 70, 16]",
      build: (f) => attentionOutput(documentAttention(f, [1, 2, 70, 16])),
    },
    {
      name: "the same, output and lse as stored",
      build: (f) => documentAttention(f, [1, 2, 70, 16]),
      grads: false,
    },
    {
      name: "5 queries over 19 keys, window 4, output and lse",
      build: (f) => attention(f, [1, 2, 5, 8], 19, { kind: "window", w: 4 }),
      grads: false,
    },
  ],
  attention_grad_q: [
    { name: "causal, [2, 3, 17, 9]", build: (f) => attentionBackward(f, "attention_grad_q"), grads: false },
  ],
  attention_grad_kv: [
    { name: "causal, [2, 3, 17, 9]", build: (f) => attentionBackward(f, "attention_grad_kv"), grads: false },
  ],
};

/** Graphs that mix several kinds of kernels and views, as models do. */
export const COMPOSITE_CASES: readonly Case[] = [
  { name: "softmax of [33, 65]", build: (f) => softmax(f.param([33, 65])) },
  // Forward only: its backward is six more matmul kernels (~10 s of cold LLVM time on lavapipe), and
  // the matmul and softmax cases check those gradients already.
  {
    name: "attention by matmul [2, 17, 9] with a causal mask",
    grads: false,
    build: (f) => {
      const [q, k, v] = [f.param([2, 17, 9]), f.param([2, 17, 9]), f.param([2, 17, 9])];
      const scores = ap("mul", matmul(q, permute(k, [0, 2, 1])), full(1 / 3, [2, 17, 17]));
      const [row, col] = [1, 2].map((axis) => node("iota", [], { shape: [2, 17, 17], axis, dtype: "i32" }));
      const masked = ap("where", ap("le", col!, row!), scores, full(-1e9, [2, 17, 17]));
      const flat = reshape(masked, [34, 17]);
      return matmul(reshape(softmax(flat), [2, 17, 17]), v);
    },
  },
  {
    name: "layer norm of [13, 70]",
    build: (f) => {
      const x = f.param([13, 70]);
      const mean = ap("mul", sum(x, [1]), full(1 / 70, [13, 1]));
      const centered = ap("sub", x, expand(mean, [13, 70]));
      const variance = ap("mul", sum(ap("mul", centered, centered), [1]), full(1 / 70, [13, 1]));
      const inv = ap("rsqrt", ap("add", variance, full(1e-5, [13, 1])));
      const gain = expand(reshape(f.param([70]), [1, 70]), [13, 70]);
      return ap("mul", ap("mul", centered, expand(inv, [13, 70])), gain);
    },
  },
  {
    name: "embedding lookup, gelu, and a weighted row sum",
    build: (f) => {
      const rows = node("gather", [f.param([23, 16]), f.input([5, 7], "i32", ints(0, 22))], null);
      const x = reshape(rows, [35, 16]);
      const gelu = ap(
        "mul",
        ap("mul", x, full(0.5, [35, 16])),
        ap("add", full(1, [35, 16]), ap("erf", ap("mul", x, full(Math.SQRT1_2, [35, 16])))),
      );
      return sum(ap("mul", gelu, expand(f.param([1, 16]), [35, 16])), [1]);
    },
  },
  {
    name: "reshape of a permute into tanh and a reduce",
    build: (f) => {
      const x = reshape(permute(f.param([4, 6, 5, 3]), [3, 1, 0, 2]), [18, 20]);
      return [ap("tanh", x), sum(ap("mul", x, x), [0])];
    },
  },
];
