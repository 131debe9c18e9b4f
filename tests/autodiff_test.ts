import assert from "node:assert/strict";
import { grad, valueAndGrad, VJP, vjp } from "../compiler/autodiff.ts";
import { interpret } from "../compiler/interpreter.ts";
import {
  ALL_OPS,
  type DType,
  type FloatDType,
  type Node,
  node,
  type Op,
  OPS,
  size,
  SpecError,
  toposort,
} from "../compiler/ir/mod.ts";
import { concat, scatterAdd, where } from "../spec/functions.ts";
import { Tensor } from "../spec/tensor.ts";
import { causal, conv2d, flashAttention, type Layout, sameDocument, sameSpan } from "../spec/mod.ts";

// ---------------------------------------------------------------------------------------------
// seeded inputs

/** mulberry32: a small seeded PRNG, so every run checks the same points. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Sampler = (count: number, rand: () => number) => number[];
const fill = (f: (rand: () => number) => number): Sampler => (count, rand) =>
  Array.from({ length: count }, () => f(rand));
const uniform = (lo: number, hi: number): Sampler => fill((rand) => lo + (hi - lo) * rand());
/** |x| in [lo, hi] with a random sign: keeps abs off its kink and divisors off zero. */
const awayFromZero = (lo: number, hi: number): Sampler =>
  fill((rand) => (rand() < 0.5 ? -1 : 1) * (lo + (hi - lo) * rand()));
/** Multiples of 1/4 plus `offset`: two grids with offsets 0 and 1/8 never come within 1/8 (no max/min ties). */
const onGrid = (offset: number): Sampler => fill((rand) => Math.floor(rand() * 8 - 4) * 0.25 + offset);
/** A shuffled ladder with steps of 0.2: no two values tie, so reduce_max has one argmax. */
const distinct: Sampler = (count, rand) => {
  const values = Array.from({ length: count }, (_, i) => (i - count / 2) * 0.2 + 0.05 * rand());
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return values;
};

/** Collects the parameters (the `wrt`) and inputs of one case with their values. */
class Fixture {
  readonly params: Record<string, number[]> = {};
  readonly inputs: Record<string, number[]> = {};
  readonly wrt: Node[] = [];
  constructor(readonly name: string, readonly rand: () => number) {}

  param(
    shape: readonly number[],
    sample: Sampler = uniform(-1, 1),
    dtype: FloatDType = "f32",
  ): Tensor<"f32"> {
    const path = `${this.name}.p${this.wrt.length}`;
    const p = node("param", [], { path, shape, dtype });
    this.params[path] = sample(size(shape), this.rand);
    this.wrt.push(p);
    return new Tensor(p);
  }
  param4(shape: readonly [number, number, number, number]): Tensor<"f32", 4> {
    return this.param(shape) as Tensor<"f32", 4>;
  }
  input<D extends DType>(shape: readonly number[], dtype: D, values: number[]): Tensor<D> {
    const name = `${this.name}.in${Object.keys(this.inputs).length}`;
    this.inputs[name] = values;
    return new Tensor(node("input", [], { name, shape, dtype }));
  }
  mask(shape: readonly number[]): Tensor<"bool"> {
    return this.input(shape, "bool", fill((rand) => +(rand() < 0.5))(size(shape), this.rand));
  }
  env() {
    return { params: this.params, inputs: this.inputs };
  }
}

// ---------------------------------------------------------------------------------------------
// one or more graphs per differentiable op

type Case = { name: string; build: (f: Fixture) => Tensor };

const SHAPES_1: readonly (readonly number[])[] = [[], [5], [2, 3]];
/** Operand shape pairs; the DSL broadcasts them with reshape + expand. */
const SHAPES_2: readonly (readonly [number[], number[]])[] = [
  [[2, 3], [2, 3]],
  [[3, 1], [1, 4]],
  [[4], [2, 3, 4]],
  [[], [3]],
];

function unaryCases(op: Op, sample: Sampler = uniform(-1.5, 1.5)): Case[] {
  return SHAPES_1.map((shape) => ({
    name: `[${shape}]`,
    build: (f) => new Tensor(node(op as "neg", [f.param(shape, sample).node], null)),
  }));
}

function binaryCases(
  apply: (a: Tensor<"f32">, b: Tensor<"f32">) => Tensor,
  sampleA: Sampler = uniform(-1.5, 1.5),
  sampleB: Sampler = uniform(-1.5, 1.5),
): Case[] {
  return SHAPES_2.map(([sa, sb]) => ({
    name: `[${sa}] with [${sb}]`,
    build: (f) => apply(f.param(sa, sampleA), f.param(sb, sampleB)),
  }));
}

const reduceCase = (op: "sum" | "reduce_max", shape: number[], axes: number[], sample: Sampler): Case => ({
  name: `[${shape}] over [${axes}]`,
  build: (f) => new Tensor(node(op, [f.param(shape, sample).node], { axes })),
});

const CASES: Partial<Record<Op, Case[]>> = {
  neg: unaryCases("neg"),
  exp: unaryCases("exp"),
  log: unaryCases("log", uniform(0.5, 2)),
  sqrt: unaryCases("sqrt", uniform(0.5, 2)),
  rsqrt: unaryCases("rsqrt", uniform(0.5, 2)),
  tanh: unaryCases("tanh"),
  sigmoid: unaryCases("sigmoid"),
  erf: unaryCases("erf"),
  sin: unaryCases("sin"),
  cos: unaryCases("cos"),
  abs: unaryCases("abs", awayFromZero(0.2, 1.5)),
  cast: [
    { name: "f32 -> f16 -> f32", build: (f) => f.param([2, 3]).cast("f16").cast("f32") },
    { name: "f16 param -> f32", build: (f) => f.param([4], uniform(-1, 1), "f16").cast("f32") },
    { name: "f32 -> f32", build: (f) => new Tensor(node("cast", [f.param([3]).node], { dtype: "f32" })) },
  ],
  add: binaryCases((a, b) => a.add(b)),
  sub: binaryCases((a, b) => a.sub(b)),
  mul: binaryCases((a, b) => a.mul(b)),
  div: binaryCases((a, b) => a.div(b), uniform(-1.5, 1.5), awayFromZero(0.5, 2)),
  pow: [
    ...binaryCases((a, b) => a.pow(b), uniform(0.5, 2), uniform(-1.5, 1.5)),
    { name: "negative base, integer exponent", build: (f) => f.param([5], awayFromZero(0.3, 1.5)).pow(3) },
  ],
  max: binaryCases((a, b) => a.maximum(b), onGrid(0.125), onGrid(0)),
  min: binaryCases((a, b) => a.minimum(b), onGrid(0.125), onGrid(0)),
  where: [
    { name: "[2,3]", build: (f) => where(f.mask([2, 3]), f.param([2, 3]), f.param([2, 3])) },
    { name: "[3,1] ? [1,4] : [3,4]", build: (f) => where(f.mask([3, 1]), f.param([1, 4]), f.param([3, 4])) },
    { name: "[4] ? [4] : 0", build: (f) => where(f.mask([4]), f.param([4]), 0) },
  ],
  sum: [
    reduceCase("sum", [2, 3], [0], uniform(-1, 1)),
    reduceCase("sum", [2, 3, 4], [0, 2], uniform(-1, 1)),
    { name: "all of [5] (DSL)", build: (f) => f.param([5]).sum() },
    { name: "mean of [2,3] axis 1 (DSL)", build: (f) => f.param([2, 3]).mean(1) },
  ],
  reduce_max: [
    reduceCase("reduce_max", [2, 3], [1], distinct),
    reduceCase("reduce_max", [2, 3, 4], [0, 2], distinct),
    { name: "all of [6] (DSL)", build: (f) => f.param([6], distinct).max() },
    { name: "maxKeep of [3,2] axis 0 (DSL)", build: (f) => f.param([3, 2], distinct).maxKeep(0) },
  ],
  matmul: [
    { name: "[2,3] x [3,4]", build: (f) => f.param([2, 3]).matmul(f.param([3, 4])) },
    { name: "[2,2,3] x [2,3,2]", build: (f) => f.param([2, 2, 3]).matmul(f.param([2, 3, 2])) },
    { name: "[3,2,3] x [3,4] (folded)", build: (f) => f.param([3, 2, 3]).matmul(f.param([3, 4])) },
    {
      name: "[1,2,3] x [2,3,4] (batch broadcast)",
      build: (f) => f.param([1, 2, 3]).matmul(f.param([2, 3, 4])),
    },
  ],
  conv2d: [
    {
      name: "3x3 same padding, [2,4,5,3] -> 4",
      build: (f) => conv2d(f.param4([2, 4, 5, 3]), f.param4([3, 3, 3, 4]), { padding: 1 }),
    },
    {
      name: "stride 2 padding 1, [1,5,6,2]",
      build: (f) => conv2d(f.param4([1, 5, 6, 2]), f.param4([3, 3, 2, 3]), { stride: 2, padding: 1 }),
    },
    {
      name: "groups 2, stride 2, no padding, [1,6,5,4]",
      build: (f) => conv2d(f.param4([1, 6, 5, 4]), f.param4([3, 2, 2, 6]), { stride: 2, groups: 2 }),
    },
    {
      name: "padding larger than the kernel, 2x2 pad 2 stride 3",
      build: (f) => conv2d(f.param4([1, 4, 4, 1]), f.param4([2, 2, 1, 2]), { stride: 3, padding: 2 }),
    },
    // a chain: the outer conv's input gradient is the inner conv's cotangent
    {
      name: "a conv of a conv (depthwise then pointwise)",
      build: (f) =>
        conv2d(
          conv2d(f.param4([1, 5, 5, 2]), f.param4([3, 3, 1, 2]), { padding: 1, groups: 2 }),
          f.param4([1, 1, 2, 3]),
        ),
    },
  ],
  reshape: [
    { name: "[2,3] -> [3,2]", build: (f) => f.param([2, 3]).reshape([3, 2]) },
    { name: "[6] -> [2,1,3]", build: (f) => f.param([6]).reshape([2, 1, 3]) },
    { name: "[] -> [1,1]", build: (f) => f.param([]).reshape([1, 1]) },
  ],
  permute: [
    { name: "[2,3] by [1,0]", build: (f) => f.param([2, 3]).permute([1, 0]) },
    { name: "[2,3,4] by [2,0,1]", build: (f) => f.param([2, 3, 4]).permute([2, 0, 1]) },
  ],
  expand: [
    { name: "[3,1] -> [3,4]", build: (f) => f.param([3, 1]).broadcastTo([3, 4]) },
    { name: "[1,1] -> [2,3]", build: (f) => f.param([1, 1]).broadcastTo([2, 3]) },
    { name: "[1,3,1] -> [2,3,4]", build: (f) => f.param([1, 3, 1]).broadcastTo([2, 3, 4]) },
  ],
  slice: [
    { name: "[5] [1,4)", build: (f) => f.param([5]).slice(0, 1, 4) },
    {
      name: "[4,5] box",
      build: (f) => new Tensor(node("slice", [f.param([4, 5]).node], { starts: [1, 0], ends: [3, 4] })),
    },
  ],
  pad: [
    { name: "[3] by 1, 2", build: (f) => f.param([3]).pad(0, 1, 2, 0.5) },
    {
      name: "[2,3] box",
      build: (f) =>
        new Tensor(node("pad", [f.param([2, 3]).node], { before: [1, 0], after: [0, 2], value: 0 })),
    },
  ],
  concat: [
    { name: "[2,3] + [1,3] axis 0", build: (f) => concat([f.param([2, 3]), f.param([1, 3])], 0) },
    {
      name: "[2,1] + [2,2] + [2,3] axis 1",
      build: (f) => concat([f.param([2, 1]), f.param([2, 2]), f.param([2, 3])], 1),
    },
    {
      name: "the same tensor twice",
      build: (f) => {
        const x = f.param([3]);
        return concat([x, x], 0);
      },
    },
  ],
  gather: [
    { name: "[5,3] rows [0,2,2,4]", build: (f) => f.param([5, 3]).gather(f.input([4], "i32", [0, 2, 2, 4])) },
    { name: "[4] by [2,2]", build: (f) => f.param([4]).gather(f.input([2, 2], "u32", [3, 1, 1, 0])) },
    {
      name: "[3,2] out of range",
      build: (f) => f.param([3, 2]).gather(f.input([4], "i32", [-1, 1, 3, 1])),
    },
  ],
  scatter_add: [
    {
      name: "[4,3] into 5 rows, repeats",
      build: (f) => scatterAdd(f.input([4], "i32", [1, 3, 1, 1]), f.param([4, 3]), 5),
    },
    {
      name: "[2,2,2] by [2,2] into 3 rows",
      build: (f) => scatterAdd(f.input([2, 2], "u32", [2, 0, 2, 1]), f.param([2, 2, 2]), 3),
    },
    {
      name: "[3] out of range",
      build: (f) => scatterAdd(f.input([3], "i32", [0, 4, -2]), f.param([3]), 2),
    },
  ],
  attention: [
    {
      name: "causal, [1,2,5,3]",
      build: (f) =>
        flashAttention(
          f.param4([1, 2, 5, 3]),
          f.param4([1, 2, 5, 3]),
          f.param4([1, 2, 5, 3]),
          causal(),
          {} as Layout,
        ),
    },
    {
      name: "Transfusion mask over text, an image and padding, [2,1,6,2]",
      build: (f) => {
        // row 0: text, text, image, image, text, pad; row 1: image, image, text, text (doc 0), text (doc 1), pad
        const layout = {
          doc: f.input([2, 6], "i32", [0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, -1]),
          modality: f.input([2, 6], "i32", [0, 0, 1, 1, 0, -1, 1, 1, 0, 0, 0, -1]),
          span: f.input([2, 6], "i32", [-1, -1, 0, 0, -1, -1, 0, 0, -1, -1, -1, -1]),
        } as unknown as Layout;
        const mask = sameDocument().and(causal().or(sameSpan("image")));
        return flashAttention(
          f.param4([2, 1, 6, 2]),
          f.param4([2, 1, 6, 2]),
          f.param4([2, 1, 6, 2]),
          mask,
          layout,
        );
      },
    },
    {
      name: "2 queries against 5 cached keys",
      build: (f) =>
        flashAttention(
          f.param4([1, 1, 2, 2]),
          f.param4([1, 1, 5, 2]),
          f.param4([1, 1, 5, 2]),
          causal(),
          {} as Layout,
        ),
    },
  ],
};

// ---------------------------------------------------------------------------------------------
// the finite-difference check

const EPS = 1e-6;
const TOLERANCE = 1e-6;

/** loss = sum(out * r) with a fixed random r, so every output element gets its own weight. */
function weightedLoss(f: Fixture, out: Tensor): Node {
  const r = f.input(out.shape, out.dtype, uniform(-1, 1)(size(out.shape), f.rand));
  return out.mul(r).sum().node;
}

function checkAgainstFiniteDifferences(op: Op, c: Case, seed: number) {
  const f = new Fixture(`${op}/${c.name}`, seeded(seed));
  const out = c.build(f);
  assert.ok(toposort([out.node]).some((n) => n.op === op), `the case builds no ${op} node`);
  const loss = weightedLoss(f, out);
  const grads = interpret(grad(loss, f.wrt), f.env());
  const lossAt = () => interpret([loss], f.env())[0]!.data[0]!;

  f.wrt.forEach((p, k) => {
    const path = (p as Node<"param">).arg.path;
    const values = f.params[path]!;
    values.forEach((v, i) => {
      values[i] = v + EPS;
      const up = lossAt();
      values[i] = v - EPS;
      const down = lossAt();
      values[i] = v;
      const numeric = (up - down) / (2 * EPS);
      const analytic = grads[k]!.data[i]!;
      const err = Math.abs(analytic - numeric) / Math.max(1, Math.abs(numeric));
      assert.ok(err < TOLERANCE, `${path}[${i}]: autodiff ${analytic}, finite differences ${numeric}`);
    });
  });
}

Deno.test("every differentiable op has a VJP rule and finite-difference cases", () => {
  const differentiable = ALL_OPS.filter((op) => OPS[op].differentiable).sort();
  assert.deepEqual(Object.keys(CASES).sort(), differentiable);
  for (const op of ALL_OPS) {
    assert.equal(VJP[op] === "nondifferentiable", !OPS[op].differentiable, `${op}: rule and trait disagree`);
  }
});

Deno.test("autodiff matches central finite differences", async (t) => {
  let seed = 1;
  for (const [op, cases] of Object.entries(CASES) as [Op, Case[]][]) {
    await t.step(op, async (t) => {
      for (const c of cases) await t.step(c.name, () => checkAgainstFiniteDifferences(op, c, seed++));
    });
  }
});

// ---------------------------------------------------------------------------------------------
// the walk: what flows where, and what does not

function p<D extends DType = "f32">(path: string, shape: number[], dtype: D = "f32" as D): Tensor<D> {
  return new Tensor(node("param", [], { path, shape, dtype }));
}
function inputOf<D extends DType = "f32">(name: string, shape: number[], dtype: D = "f32" as D): Tensor<D> {
  return new Tensor(node("input", [], { name, shape, dtype }));
}
const evaluate = (
  nodes: readonly Node[],
  params: Record<string, number[]>,
  inputs: Record<string, number[]> = {},
) => interpret(nodes, { params, inputs }).map((v) => [...v.data]);
const close = (actual: number[], expected: number[]) => {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) < 1e-12, `[${i}]: ${a} vs ${expected[i]}`));
};

Deno.test("asking for the gradient of an integer tensor is an error that names it", () => {
  const x = p("walk.x", [3]);
  const counts = p("walk.counts", [3], "i32");
  const loss = x.mul(counts.cast("f32")).sum().node;
  assert.throws(() => grad(loss, [x.node, counts.node]), (e: unknown) => {
    assert.ok(e instanceof SpecError);
    assert.match(e.message, /i32\[3\]/);
    assert.match(e.message, /only f32\/f16/);
    return true;
  });
  const index = inputOf("walk.index", [2], "i32");
  const gathered = x.gather(index).sum().node;
  assert.throws(() => grad(gathered, [index.node]), SpecError);
});

Deno.test("the loss must be a float scalar", () => {
  const x = p("walk.x", [3]);
  assert.throws(() => grad(x.exp().node, [x.node]), /float scalar/);
  assert.throws(() => grad(x.cast("i32").sum().node, [x.node]), /float scalar/);
});

Deno.test("no gradient flows through casts to integers, comparisons or RNG seeds", () => {
  const [x, y] = [p("walk.x", [3]), p("walk.y", [3])];
  const viaInt = x.cast("i32").cast("f32").sum().node;
  const viaMask = x.lt(y).cast("f32").sum().node;
  for (const loss of [viaInt, viaMask]) {
    const grads = grad(loss, [x.node, y.node]);
    for (const g of grads) {
      assert.equal(g.op, "const");
      assert.deepEqual(g.shape, [3]);
    }
    const params = { "walk.x": [0.5, -1, 2], "walk.y": [1, 1, 1] };
    for (const v of evaluate(grads, params)) assert.deepEqual(v, [0, 0, 0]);
  }

  const seed = inputOf("walk.seed", [2], "u32");
  const noise = node("rand_normal", [seed.node], { shape: [3], stream: 0 });
  const loss = x.mul(new Tensor(noise)).sum().node;
  const inputs = { "walk.seed": [7, 0] };
  const [gx, n] = evaluate([grad(loss, [x.node])[0]!, noise], { "walk.x": [1, 2, 3] }, inputs);
  close(gx!, n!);
  assert.throws(() => grad(loss, [seed.node]), /only f32\/f16/);
});

Deno.test("the gradient with respect to a parameter the loss does not use is zero", () => {
  const [x, unused] = [p("walk.x", [3]), p("walk.unused", [2, 2])];
  const [, g] = grad(x.exp().sum().node, [x.node, unused.node]);
  assert.equal(g!.op, "const");
  assert.deepEqual(g!.shape, [2, 2]);
  assert.deepEqual(evaluate([g!], {})[0], [0, 0, 0, 0]);
});

let probes = 0;
/** How many new nodes `build` makes: node ids count up, and a fresh constant is never hash-consed. */
function nodesMadeBy(build: () => unknown): number {
  const probe = () => node("const", [], { value: 0.5 + probes++, shape: [], dtype: "f32" }).id;
  const before = probe();
  build();
  return probe() - before - 1;
}

Deno.test("branches that do not lead to wrt are not differentiated", () => {
  const [x1, x2, y] = [p("skip.x1", [3]), p("skip.x2", [3]), p("skip.y", [3])];
  const plain = x1.sum().node;
  const withBranch = x2.sum().add(y.tanh().exp().sin().sum()).node;
  const plainCost = nodesMadeBy(() => grad(plain, [x1.node]));
  const branchCost = nodesMadeBy(() => grad(withBranch, [x2.node]));
  // differentiating the y branch would make new nodes for each of tanh, exp and sin
  assert.ok(branchCost <= plainCost, `made ${branchCost} nodes, ${plainCost} without the branch`);
  const [g2] = grad(withBranch, [x2.node]);
  assert.ok(!toposort([g2!]).some((n) => n.op === "tanh" || n.src.includes(y.node)));
  assert.deepEqual(evaluate([g2!], {})[0], [1, 1, 1]);
});

Deno.test("cotangents of a node used more than once add up", () => {
  const x = p("walk.x", [3]);
  const xs = [0.5, -1, 2];
  const loss = x.mul(x).sum().add(x.exp().sum()).node; // d/dx = 2x + e^x
  const [g] = evaluate(grad(loss, [x.node]), { "walk.x": xs });
  close(g!, xs.map((v) => 2 * v + Math.exp(v)));
});

Deno.test("the gradient with respect to an intermediate node stops there, and the leaf sees all paths", () => {
  const x = p("walk.x", [2]);
  const h = x.exp();
  const loss = h.mul(3).sum().node; // d/dh = 3, d/dx = 3 e^x
  const xs = [0.25, -0.5];
  const [gh, gx] = evaluate(grad(loss, [h.node, x.node]), { "walk.x": xs });
  close(gh!, [3, 3]);
  close(gx!, xs.map((v) => 3 * Math.exp(v)));
});

Deno.test("vjp pulls several outputs back with their own cotangents", () => {
  const x = p("walk.x", [3]);
  const [y1, y2] = [x.mul(2), x.mul(x)];
  const [c1, c2] = [inputOf("walk.c1", [3]), inputOf("walk.c2", [3])];
  const [g] = vjp([y1.node, y2.node], [c1.node, c2.node], [x.node]);
  const xs = [1, -2, 0.5];
  const inputs = { "walk.c1": [1, 0, 2], "walk.c2": [0.5, 1, -1] };
  const [got] = evaluate([g!], { "walk.x": xs }, inputs);
  // 2 c1 + 2 x c2
  close(got!, xs.map((v, i) => 2 * inputs["walk.c1"][i]! + 2 * v * inputs["walk.c2"][i]!));
  assert.throws(() => vjp([y1.node], [inputOf("walk.c3", [4]).node], [x.node]), /does not match/);
  assert.throws(() => vjp([y1.node], [], [x.node]), /1 outputs but 0 cotangents/);
});

Deno.test("valueAndGrad returns the loss and the same gradient nodes as grad", () => {
  const x = p("walk.x", [3]);
  const loss = x.tanh().sum().node;
  const { value, grads } = valueAndGrad(loss, [x.node]);
  assert.equal(value, loss);
  assert.equal(grads[0], grad(loss, [x.node])[0]); // hash-consed: the same graph is the same node
});

Deno.test("gather and scatter_add route repeated and out-of-range indices", () => {
  const table = p("walk.table", [3, 2]);
  const index = inputOf("walk.index", [5], "i32");
  const r = inputOf("walk.r", [5, 2]);
  const inputs = { "walk.index": [0, 0, 2, 0, 7], "walk.r": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };
  const [gTable] = evaluate(grad(table.gather(index).mul(r).sum().node, [table.node]), {
    "walk.table": [0, 0, 0, 0, 0, 0],
  }, inputs);
  // row 0 is read by positions 0, 1, 3; row 1 by none; row 2 by position 2; 7 is out of range
  assert.deepEqual(gTable, [1 + 3 + 7, 2 + 4 + 8, 0, 0, 5, 6]);

  const updates = p("walk.updates", [4, 2]);
  const rows = inputOf("walk.rows", [4], "i32");
  const weights = inputOf("walk.weights", [2, 2]);
  const loss = scatterAdd(rows, updates, 2).mul(weights).sum().node;
  const [gUpdates] = evaluate(grad(loss, [updates.node]), { "walk.updates": Array(8).fill(1) }, {
    "walk.rows": [1, 1, 0, 5],
    "walk.weights": [1, 2, 3, 4],
  });
  assert.deepEqual(gUpdates, [3, 4, 3, 4, 1, 2, 0, 0]);
});

Deno.test("documented choices at non-smooth points", async (t) => {
  await t.step("max and min split a tie in half", () => {
    const [a, b] = [p("kink.a", [2]), p("kink.b", [2])];
    const params = { "kink.a": [0.5, 1], "kink.b": [0.5, 2] };
    // element 1 is no tie: max picks b (2), min picks a (1)
    const cases = [{ out: a.maximum(b), second: [0, 1] }, { out: a.minimum(b), second: [1, 0] }];
    for (const { out, second } of cases) {
      const [ga, gb] = evaluate(grad(out.sum().node, [a.node, b.node]), params);
      assert.deepEqual([ga![0], gb![0]], [0.5, 0.5]);
      assert.deepEqual([ga![1], gb![1]], second);
    }
  });
  await t.step("reduce_max shares the cotangent among tied maxima", () => {
    const x = p("kink.x", [4]);
    const [g] = evaluate(grad(x.max().node, [x.node]), { "kink.x": [1, 3, 3, 2] });
    assert.deepEqual(g, [0, 0.5, 0.5, 0]);
  });
  await t.step("abs has gradient 0 at 0", () => {
    const x = p("kink.x", [3]);
    const [g] = evaluate(grad(x.abs().sum().node, [x.node]), { "kink.x": [-2, 0, 3] });
    assert.deepEqual(g, [-1, 0, 1]);
  });
  await t.step("pow: the exponent gets 0 where the base is <= 0, never NaN", () => {
    const [a, b] = [p("kink.a", [3]), p("kink.b", [3])];
    const [ga, gb] = evaluate(grad(a.pow(b).sum().node, [a.node, b.node]), {
      "kink.a": [-2, 0, 2],
      "kink.b": [2, 2, 2],
    });
    close(ga!, [-4, 0, 4]); // b a^(b-1)
    close(gb!, [0, 0, 4 * Math.log(2)]); // a^b log a, guarded
  });
});
