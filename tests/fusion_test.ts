/**
 * Fusion rewrites and fused kernels. The graph rewrites (passes/pieces.ts, passes/contractions.ts)
 * must keep every value equal under the reference interpreter and take the shape they promise; the
 * fused plans they lead to run on WebGPU and are checked, forward and gradients, against the
 * interpreter, with fewer dispatches than the unfused plan of the same graph.
 */
import assert from "node:assert/strict";
import { grad } from "../compiler/autodiff.ts";
import { compileGraph } from "../compiler/compile.ts";
import { interpret } from "../compiler/interpreter.ts";
import { type Node, node, toposort } from "../compiler/ir/mod.ts";
import { verify } from "../compiler/verify.ts";
import { joinPieces } from "../compiler/passes/pieces.ts";
import { mergeContractions } from "../compiler/passes/contractions.ts";
import type { Plan } from "../compiler/plan.ts";
import { Executor } from "../runtime/executor.ts";
import { lowerEntry } from "../compiler/lower/lower.ts";
import { defaultVariant } from "../kernels/matmul.ts";
import { defaultAttentionVariant } from "../kernels/flash_attention.ts";
import { Fixture, ints, seeded, uniform } from "./conformance_cases.ts";
import { assertClose, gradientsBesideInterpreter } from "./fixtures/gpu_gradients.ts";

const TOL = 2e-5;
const ap = (op: "add" | "sub" | "mul" | "tanh" | "sin" | "cos", ...src: Node[]) => node(op, src, null);
const slice = (x: Node, axis: number, start: number, end: number) =>
  node("slice", [x], {
    starts: x.shape.map((_, i) => (i === axis ? start : 0)),
    ends: x.shape.map((d, i) => (i === axis ? end : d)),
  });
const matmul = (a: Node, b: Node) => node("matmul", [a, b], null);
const sumAll = (x: Node) =>
  node("reshape", [node("sum", [x], { axes: x.shape.map((_, i) => i) })], { shape: [] });
const opsOf = (roots: readonly Node[]) => toposort(roots).map((n) => n.op);

/** RoPE's rotate-half over the last axis, with angles from iota: [2, 3, 5, 8]. */
function rotateHalves(x: Node): Node {
  const half = x.shape[3]! / 2;
  const shape = [...x.shape.slice(0, 3), half];
  const angle = node("mul", [
    node("iota", [], { shape, axis: 2, dtype: "f32" }),
    node("const", [], { value: 0.3, shape, dtype: "f32" }),
  ], null);
  const [cos, sin] = [ap("cos", angle), ap("sin", angle)];
  const [x1, x2] = [slice(x, 3, 0, half), slice(x, 3, half, 2 * half)];
  return node("concat", [
    ap("sub", ap("mul", x1, cos), ap("mul", x2, sin)),
    ap("add", ap("mul", x2, cos), ap("mul", x1, sin)),
  ], {
    axis: 3,
  });
}

/** Rotated pieces feeding a product, as attention's q does. */
function ropeGraph(f: Fixture): Node {
  const x = f.param([2, 3, 5, 8]);
  const w = f.param([8, 6]);
  const y = matmul(node("reshape", [rotateHalves(x)], { shape: [30, 8] }), w);
  return ap("tanh", y);
}

/** Three products of one input (q, k, v) whose input gradient is a sum of three products. */
function siblingGraph(f: Fixture): Node {
  const x = f.param([7, 5]);
  const [wq, wk, wv] = [f.param([5, 4]), f.param([5, 4]), f.param([5, 4])];
  return ap("add", ap("mul", ap("tanh", matmul(x, wq)), matmul(x, wk)), matmul(x, wv));
}

const full = (value: number, shape: readonly number[]) => node("const", [], { value, shape, dtype: "f32" });
const rowsOf = (x: Node, stat: Node) => node("expand", [stat], { shape: x.shape });

/** RMSNorm over the last axis with a gain: [6, 5, 16]. */
function rmsNormGraph(f: Fixture): Node {
  const x = f.param([6, 5, 16]);
  const meanSquare = ap("mul", node("sum", [ap("mul", x, x)], { axes: [2] }), full(1 / 16, [6, 5, 1]));
  const inv = node("rsqrt", [ap("add", meanSquare, full(1e-5, [6, 5, 1]))], null);
  const gain = node("expand", [node("reshape", [f.param([16])], { shape: [1, 1, 16] })], {
    shape: [6, 5, 16],
  });
  return ap("mul", ap("mul", x, rowsOf(x, inv)), gain);
}

/** Softmax over rows of [9, 33]: a max row pass, then a sum row pass. */
function softmaxGraph(f: Fixture): Node {
  const x = f.param([9, 33]);
  const e = node("exp", [ap("sub", x, rowsOf(x, node("reduce_max", [x], { axes: [1] })))], null);
  return node("div", [e, rowsOf(e, node("sum", [e], { axes: [1] }))], null);
}

function lossOf(out: Node, f: Fixture): Node {
  return sumAll(ap("mul", out, f.input(out.shape, "f32", uniform(-1, 1))));
}

function closeEnough(what: string, got: ArrayLike<number>, ref: ArrayLike<number>) {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) {
    const [g, r] = [got[i]!, ref[i]!];
    assert.ok(Math.abs(g - r) <= TOL * (1 + Math.abs(r)), `${what}[${i}]: gpu ${g}, reference ${r}`);
  }
}

const dispatches = (plan: Plan, entry: string) => plan.entries[entry]!.steps.length;

const rowKernels = (plan: Plan, entry: string) =>
  plan.entries[entry]!.steps.map((s) => plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!).filter((k) =>
    k.doc.startsWith("row:")
  );

/** Compiles fused and unfused, runs the fused gradients plan, checks outputs and gradients. */
async function checkFused(build: (f: Fixture) => Node) {
  const f = new Fixture(seeded(7));
  f.caseName = "fusion";
  const out = build(f);
  const loss = lossOf(out, f);
  const outputs = { out, loss };
  const fused = compileGraph(outputs, { grads: true });
  const unfused = compileGraph(outputs, { grads: true, fuse: false });
  assert.ok(
    dispatches(fused, "gradients") < dispatches(unfused, "gradients"),
    `fused ${dispatches(fused, "gradients")} vs unfused ${dispatches(unfused, "gradients")} dispatches`,
  );
  assertClose(await gradientsBesideInterpreter(fused, f, out, loss), TOL);
  return fused;
}

Deno.test("joinPieces: a sum of zero pads that tile becomes one concat, nested concats flatten", () => {
  const f = new Fixture(seeded(3));
  f.caseName = "join";
  const [a, b] = [f.param([2, 3]), f.param([2, 5])];
  const pad = (x: Node, before: number, after: number) =>
    node("pad", [x], { before: [0, before], after: [0, after], value: 0 });
  const summed = ap("add", pad(b, 3, 0), pad(a, 0, 5));
  const c = f.param([2, 4]);
  const nested = node("concat", [node("concat", [a, b], { axis: 1 }), c], { axis: 1 });
  // Pads that overlap, or that leave a gap, are sums and stay sums.
  const overlapping = ap("add", pad(a, 0, 1), pad(f.param([2, 2]), 2, 0));
  const roots = [summed, nested, overlapping];
  const joined = joinPieces(roots);
  verify(joined);
  assert.equal(joined[0]!.op, "concat");
  assert.deepEqual(joined[0]!.src, [a, b]);
  assert.equal(joined[1]!.op, "concat");
  assert.deepEqual(joined[1]!.src, [a, b, c]);
  assert.equal(joined[2], overlapping);
  const env = { params: f.params };
  interpret(roots, env).forEach((v, i) => assert.deepEqual(interpret([joined[i]!], env)[0]!.data, v.data));
});

Deno.test("mergeContractions: siblings share one product, sums of products become one product", () => {
  const f = new Fixture(seeded(5));
  f.caseName = "merge";
  const out = siblingGraph(f);
  const loss = lossOf(out, f);
  const params = toposort([loss]).filter((n): n is Node<"param"> => n.op === "param");
  const roots = [out, ...grad(loss, params)];
  const merged = mergeContractions(roots);
  verify(merged);
  const products = (rs: readonly Node[]) => opsOf(rs).filter((op) => op === "matmul").length;
  // Forward: q, k, v -> one product. dX: three products summed -> one. dW of each stays (roots).
  assert.equal(products([roots[0]!]), 3);
  assert.equal(products([merged[0]!]), 1);
  assert.equal(products([merged[1]!]), 2, "dX: the forward product and the merged sum");
  assert.ok(products(merged) < products(roots));
  const env = { params: f.params, inputs: f.inputs };
  const before = interpret(roots, env);
  const after = interpret(merged, env);
  before.forEach((v, i) => {
    v.data.forEach((x, j) => assert.ok(Math.abs(x - after[i]!.data[j]!) <= 1e-12 * (1 + Math.abs(x))));
  });
});

Deno.test("mergeContractions leaves roots and dependent siblings alone", () => {
  const f = new Fixture(seeded(9));
  f.caseName = "keep";
  const x = f.param([4, 4]);
  const first = matmul(x, f.param([4, 4]));
  // The second product's operand is computed from the first: merging them would make a cycle.
  const second = matmul(x, ap("tanh", first));
  const rooted = [matmul(x, f.param([4, 3])), matmul(x, f.param([4, 2]))];
  const roots = [ap("add", ap("tanh", second), first), ...rooted];
  const merged = mergeContractions(roots);
  verify(merged);
  assert.deepEqual(merged.slice(1), rooted);
  assert.equal(opsOf([merged[0]!]).filter((op) => op === "matmul").length, 2);
});

Deno.test("fused RoPE pieces: one kernel stores the rotated tensor, matching the interpreter", async () => {
  const plan = await checkFused(ropeGraph);
  const forward = plan.entries.forward!.steps.map((s) => plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!);
  const joins = forward.filter((k) => k.ops[0] === "concat");
  assert.equal(joins.length, 1, `kernels: ${forward.map((k) => k.ops[0]).join(", ")}`);
  assert.ok(joins[0]!.ops.includes("sin") && joins[0]!.ops.includes("cos"));
  // The gradient's halves (a sum of pads) are joined too: no kernel adds two pads.
  const gradients = plan.entries.gradients!.steps.map((s) =>
    plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!
  );
  assert.ok(!gradients.some((k) => k.ops[0] === "add" && k.ops.filter((o) => o === "pad").length === 2));
});

/** A table computed from parameters (4 ops) and gathered into 12x its rows: the KV cache merge's shape. */
function expandedGatherGraph(f: Fixture): Node {
  const table = ap("sin", ap("mul", ap("cos", f.param([4, 6])), ap("tanh", f.param([4, 6]))));
  const rows = node("gather", [table, f.input([48], "i32", ints(0, 3))], null);
  return ap("mul", rows, f.param([48, 6]));
}

Deno.test("a computed table read 12x over through a gather is stored once, not recomputed per read", async () => {
  const plan = await checkFused(expandedGatherGraph);
  const forward = plan.entries.forward!.steps.map((s) => plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!);
  const names = forward.map((k) => k.ops.join("+")).join(", ");
  assert.ok(forward.some((k) => k.ops[0] === "sin" && k.ops.includes("cos")), `kernels: ${names}`);
  const reader = forward.find((k) => k.ops.includes("gather"))!;
  assert.ok(!reader.ops.includes("cos"), `the gathering kernel recomputes the table: ${names}`);
});

Deno.test("fused sibling products and summed products match the interpreter", async () => {
  const plan = await checkFused(siblingGraph);
  const matmuls = (entry: string) =>
    plan.entries[entry]!.steps.filter((s) =>
      s.kind === "dispatch" && plan.kernels[s.kernel]!.ops[0] === "matmul"
    )
      .length;
  assert.equal(matmuls("forward"), 1, "q, k and v in one product");
  // The joined weights live in one buffer: the load selects an address, it does not branch.
  const product = plan.kernels.find((k) => k.name.startsWith("f") && k.ops[0] === "matmul")!;
  const loadB = product.wgsl.slice(product.wgsl.indexOf("fn load_b"));
  const body = loadB.slice(0, loadB.indexOf("\n}"));
  assert.match(body, /params\[select\(/);
  assert.doesNotMatch(body, /if \(/);
  // It stores q, k and v as three tensors (each freed after its own last reader), not one.
  const branches = product.wgsl.match(/else if \(/g)?.length ?? 0;
  assert.ok(branches >= 2, `the store picks one of three slices: ${branches} branches`);
});

/** z * tanh(z), z = the product + a bias: the epilogue reads the accumulator twice (as GELU does). */
function twiceReadEpilogue(product: (f: Fixture) => Node) {
  return (f: Fixture): Node => {
    const p = product(f);
    const bias = node("expand", [node("reshape", [f.param([p.shape.at(-1)!])], {
      shape: [...p.shape.map(() => 1).slice(1), p.shape.at(-1)!],
    })], { shape: p.shape });
    const z = ap("add", p, bias);
    return ap("mul", z, ap("tanh", z));
  };
}

for (
  const [what, product] of [
    ["matmul", (f: Fixture) => matmul(f.param([9, 12]), f.param([12, 10]))],
    [
      "conv2d",
      (f: Fixture) =>
        node("conv2d", [f.param([2, 6, 6, 3]), f.param([3, 3, 3, 8])], { stride: 1, padding: 1, groups: 1 }),
    ],
  ] as const
) {
  Deno.test(`a ${what} epilogue that reads the accumulator twice fuses into the ${what} kernel`, async () => {
    const plan = await checkFused(twiceReadEpilogue(product));
    const forward = plan.entries.forward!.steps.flatMap((s) =>
      s.kind === "dispatch" ? [plan.kernels[s.kernel]!] : []
    );
    const withTanh = forward.filter((k) => k.ops.includes("tanh"));
    assert.deepEqual(withTanh.map((k) => k.ops[0]), [what], `forward kernels: ${forward.map((k) => k.ops)}`);
  });
}

Deno.test("row fusion: RMSNorm forward and backward reduce and write each row in one kernel", async () => {
  const plan = await checkFused(rmsNormGraph);
  const forward = rowKernels(plan, "forward");
  assert.equal(forward.length, 1, "sum of squares, rsqrt and the scaling in one kernel");
  assert.ok(forward[0]!.ops.includes("sum") && forward[0]!.ops.includes("rsqrt"));
  const standalone = plan.entries.forward!.steps.map((s) =>
    plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!
  )
    .filter((k) => !k.doc.startsWith("row:") && k.doc.includes("-> f32[6, 5, 1]"));
  assert.deepEqual(standalone.map((k) => k.name), [], "no kernel of its own for the row statistic");
  // The backward's row sum of dy * g * x runs in the kernel writing dx; the forward statistic is
  // kept for the backward by the row kernel that computes it.
  const backward = rowKernels(plan, "gradients");
  assert.ok(backward.length >= 2);
  for (const k of backward) assert.ok(k.ops.includes("sum"), `${k.name} lists its reduction: ${k.ops}`);
});

Deno.test("row fusion: softmax's sum pass runs in the kernel that divides by it", async () => {
  const plan = await checkFused(softmaxGraph);
  const rows = rowKernels(plan, "forward");
  assert.equal(rows.length, 1);
  assert.deepEqual([rows[0]!.ops[0], rows[0]!.ops.includes("sum")], ["div", true]);
});

Deno.test("row fusion never makes a reader of a kept statistic wait on its own input", async () => {
  // b reads the row sum r; a reads r and b. Fusing r into a would make b (which a reads) wait for a.
  const f = new Fixture(seeded(13));
  f.caseName = "rows";
  const x = f.param([7, 12]);
  const r = node("sum", [ap("mul", x, x)], { axes: [1] });
  const b = ap("tanh", ap("mul", x, rowsOf(x, r)));
  const a = ap("add", b, rowsOf(x, r));
  const plan = compileGraph({ a, b });
  assert.equal(rowKernels(plan, "forward").length, 1);
  const executor = await Executor.create(plan);
  try {
    for (const p of plan.params) await executor.setParam(p.path, f.params[p.path]!);
    const got = await executor.run("forward", {});
    const [refA, refB] = interpret([a, b], { params: f.params });
    closeEnough("a", got.a!, refA!.data);
    closeEnough("b", got.b!, refB!.data);
  } finally {
    executor.destroy();
  }
});

Deno.test("fused kernels bind every buffer they store into for writing, with arenas spilled", () => {
  for (const build of [rmsNormGraph, siblingGraph, ropeGraph, softmaxGraph]) {
    const f = new Fixture(seeded(2));
    f.caseName = "spill";
    const out = build(f);
    const loss = lossOf(out, f);
    const all = toposort([loss]);
    const params = all.filter((n): n is Node<"param"> => n.op === "param");
    const leaves = new Map(params.map((p, i) => [p.id, { buffer: "params", offset: 1024 * i }]));
    const placed = grad(loss, params).map((g, i) => ({ node: g, at: { buffer: "grads", offset: 1024 * i } }));
    // Arenas as small as the largest tensor: activations spread over several (act, act1, ...), as
    // T1's do at 128 MiB, so kernels write into other arenas than the one holding their output.
    const largest = Math.max(...all.map((n) => Math.ceil(n.shape.reduce((a, b) => a * b, 1) / 4) * 4));
    const lowered = lowerEntry({
      outputs: [{ name: "out", node: out }, { name: "loss", node: loss }],
      inputs: all.filter((n): n is Node<"input"> => n.op === "input"),
      placed,
      leaves,
    }, {
      prefix: "s",
      arenaWords: largest,
      matmulVariant: (s) => defaultVariant("cpu", s),
      attentionVariant: (s) => defaultAttentionVariant("cpu", s),
    });
    assert.ok(lowered.arenaWords.length > 1, `${build.name}: the arenas spill`);
    for (const k of lowered.kernels) {
      for (const b of k.bindings.filter((b) => b.access === "read")) {
        assert.doesNotMatch(
          k.wgsl,
          new RegExp(`\\b${b.buffer}\\[[^\\]]*\\] =`),
          `${k.name} stores into read-only ${b.buffer}`,
        );
      }
    }
  }
});
