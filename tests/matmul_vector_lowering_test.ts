/**
 * Lowered matmuls with vec4 operand loads (compiler/lower/matmul_vector_io.ts): which operand
 * layouts get them, and plans compiled with the `vector` variant forced, run on WebGPU against the
 * reference interpreter, forward and gradients (X^T @ dY and dY @ W^T read transposed in place).
 */
import assert from "node:assert/strict";
import { compile, compileGraph } from "../compiler/compile.ts";
import { type Node, node } from "../compiler/ir/mod.ts";
import type { Plan } from "../compiler/plan.ts";
import { matmulVectorOperands } from "../compiler/lower/matmul_vector_io.ts";
import type { Kernel } from "../kernels/kernel.ts";
import type { MatmulVariant } from "../kernels/matmul.ts";
import { Executor } from "../runtime/executor.ts";
import type { AnyModel } from "../spec/mod.ts";
import demo from "../examples/transfusion_demo.ts";
import { SMALL_DEMO } from "./fixtures/small_demo.ts";
import { gradientsBesideInterpreter } from "./fixtures/gpu_gradients.ts";
import { Fixture, seeded, uniform } from "./conformance_cases.ts";

const VECTOR: MatmulVariant = { kind: "vector", tm: 8, tn: 16, wgX: 8, wgY: 8 };
const matmul = (a: Node, b: Node) => node("matmul", [a, b], null);
const ap = (op: "add" | "mul" | "tanh", ...src: Node[]) => node(op, src, null);
const transpose = (x: Node) => {
  const r = x.shape.length;
  const perm = [...x.shape.keys()];
  [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
  return node("permute", [x], { perm });
};
const broadcast = (x: Node, shape: readonly number[]) =>
  node(
    "expand",
    [node("reshape", [x], { shape: [...shape.map(() => 1).slice(x.shape.length), ...x.shape] })],
    {
      shape,
    },
  );
const sumAll = (x: Node) =>
  node("reshape", [node("sum", [x], { axes: x.shape.map((_, i) => i) })], { shape: [] });

const matmulKernels = (plan: Plan) => plan.kernels.filter((k) => k.ops.includes("matmul"));
/** Reads an operand with vec4 loads: the helpers exist, and some buffer is declared as vec4s. */
const vectorized = (k: Kernel) => /load_a4\(/.test(k.wgsl) && /array<vec4<(u32|f32|f16)>>/.test(k.wgsl);

function closeEnough(what: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number) {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) {
    const [g, r] = [got[i]!, ref[i]!];
    assert.ok(Math.abs(g - r) <= tol * (1 + Math.abs(r)), `${what}[${i}]: gpu ${g}, reference ${r}`);
  }
}

/**
 * Compiles `out` and loss = sum(out * r) (r an input, so dY is stored) with the vector variant and
 * gradients, runs entry `gradients`, and checks out, loss and every parameter's gradient.
 */
async function checkVector(
  build: (f: Fixture) => Node,
  opts: { storage?: "f32" | "f16"; tol?: number } = {},
): Promise<Plan> {
  const f = new Fixture(seeded(11));
  f.caseName = "vec";
  const out = build(f);
  const loss = sumAll(ap("mul", out, f.input(out.shape, "f32", uniform(-1, 1))));
  const plan = compileGraph({ out, loss }, { grads: true, matmulVariant: () => VECTOR, ...opts });
  const tol = opts.tol ?? 2e-5;
  for (const { what, got, want } of await gradientsBesideInterpreter(plan, f, out, loss)) {
    closeEnough(what, got, want, tol);
  }
  return plan;
}

Deno.test("vector IO: operand layouts", async (t) => {
  const f = new Fixture(seeded(1));
  f.caseName = "layout";
  const x = f.param([8, 12]);
  const w = f.param([12, 16]);
  const at = (...placed: [Node, number][]) =>
    new Map(placed.map(([n, offset]) => [n.id, { buffer: "params", offset }]));
  const modes = (mm: Node, location: ReturnType<typeof at>) => {
    const v = matmulVectorOperands(mm, location);
    return v && [v.a.mode, v.b.mode];
  };
  await t.step("row-major A and B: a k, b n; transposed in place: a m, b k", () => {
    assert.deepEqual(modes(matmul(x, w), at([x, 0], [w, 96])), ["k", "n"]);
    const y = f.param([8, 16]);
    assert.deepEqual(modes(matmul(transpose(x), y), at([x, 0], [y, 96])), ["m", "n"]);
    assert.deepEqual(modes(matmul(y, transpose(w)), at([y, 0], [w, 128])), ["k", "k"]);
  });
  await t.step("a broadcast batch and a reshape of a stored tensor keep their vec4 layout", () => {
    const x3 = f.param([2, 4, 12]);
    const flat = node("reshape", [x3], { shape: [8, 12] });
    assert.deepEqual(modes(matmul(flat, w), at([x3, 0], [w, 96])), ["k", "n"]);
    const batched = matmul(x3, broadcast(w, [2, 12, 16]));
    assert.deepEqual(modes(batched, at([x3, 0], [w, 96])), ["k", "n"]);
    const merged = node("reshape", [transpose(x3)], { shape: [24, 4] }); // [2, 12, 4] -> rows mix batches
    assert.equal(modes(matmul(merged, f.param([4, 8])), at([x3, 0])), undefined);
  });
  await t.step("heads merged by a reshape (strided runs) and concats of pieces (merged products)", () => {
    const heads = (d: number) => {
      const p = f.param([2, 4, 6, d]); // [batch, heads, seq, head dim] -> [batch * seq, heads * head dim]
      return [p, node("reshape", [node("permute", [p], { perm: [0, 2, 1, 3] })], { shape: [12, 4 * d] })];
    };
    const a = f.param([5, 12]);
    const [p8, b8] = heads(8);
    assert.deepEqual(modes(matmul(a, b8!), at([a, 0], [p8!, 64])), ["k", "n"]);
    const [p6, b6] = heads(6);
    assert.equal(modes(matmul(a, b6!), at([a, 0], [p6!, 64])), undefined);
    const [w1, w2, w3] = [f.param([12, 8]), f.param([12, 8]), f.param([12, 6])];
    const siblings = node("concat", [w1, w2], { axis: 1 });
    assert.deepEqual(modes(matmul(x, siblings), at([x, 0], [w1, 96], [w2, 192])), ["k", "n"]);
    const ragged = node("concat", [w3, w2], { axis: 1 });
    assert.equal(modes(matmul(x, ragged), at([x, 0], [w3, 96], [w2, 192])), undefined);
    const wt = f.param([16, 12]);
    const joined = node("concat", [x, x], { axis: 1 }); // [8, 24]
    const summed = matmul(joined, node("concat", [w, transpose(wt)], { axis: 0 }));
    assert.equal(modes(summed, at([x, 0], [w, 96], [wt, 288])), undefined, "pieces disagree on B's mode");
    const [w4, w5] = [f.param([12, 16]), f.param([12, 16])];
    const both = matmul(joined, node("concat", [w4, w5], { axis: 0 }));
    assert.deepEqual(modes(both, at([x, 0], [w4, 96], [w5, 288])), ["k", "n"]);
  });
  await t.step("misaligned offsets, odd strides, computed operands and k % 4 != 0 get none", () => {
    assert.equal(modes(matmul(x, w), at([x, 2], [w, 96])), undefined);
    const x10 = f.param([8, 10]);
    const sliced = node("slice", [x10], { starts: [0, 2], ends: [8, 10] });
    assert.equal(modes(matmul(sliced, f.param([8, 16])), at([x10, 0])), undefined);
    assert.equal(modes(matmul(ap("tanh", x), w), at([x, 0], [w, 96])), undefined);
    const w6 = f.param([6, 16]);
    assert.equal(modes(matmul(f.param([8, 6]), w6), at([w6, 0])), undefined);
  });
});

Deno.test("vector variant on WebGPU matches the interpreter", async (t) => {
  await t.step("X @ W, and its gradients X^T @ dY and dY @ W^T", async () => {
    const plan = await checkVector((f) => matmul(f.param([12, 16]), f.param([16, 20])));
    const kernels = matmulKernels(plan);
    assert.ok(kernels.length >= 3, `${kernels.length} matmul kernels`);
    for (const k of kernels) assert.ok(vectorized(k), `${k.name} ${k.doc} reads vec4s`);
  });
  await t.step("batched products, one with a broadcast weight", async () => {
    const plan = await checkVector((f) => {
      const x = f.param([2, 3, 8, 12]);
      const own = matmul(x, f.param([2, 3, 12, 8]));
      return ap("add", own, matmul(x, broadcast(f.param([12, 8]), [2, 3, 12, 8])));
    });
    assert.ok(matmulKernels(plan).some(vectorized));
  });
  await t.step("a fused epilogue: bias and residual", async () => {
    const plan = await checkVector((f) => {
      const y = matmul(f.param([12, 16]), f.param([16, 24]));
      return ap("add", ap("add", y, broadcast(f.param([24]), [12, 24])), f.param([12, 24]));
    });
    const fused = matmulKernels(plan).filter((k) => k.ops.includes("add"));
    assert.ok(fused.length > 0 && fused.every(vectorized), "the fused product reads vec4s");
  });
  await t.step("a split product (merged siblings) and its gradients", async () => {
    const plan = await checkVector((f) => {
      const x = f.param([8, 12]);
      const [wq, wk] = [f.param([12, 8]), f.param([12, 8])];
      return ap("mul", ap("tanh", matmul(x, wq)), matmul(x, wk));
    });
    const split = matmulKernels(plan).filter((k) => k.name.startsWith("f"));
    assert.equal(split.length, 1, "one merged forward product");
    assert.ok(vectorized(split[0]!), "it reads the concat of its weights as vec4s");
  });
  await t.step("a merged sum of products and a product over merged heads", async () => {
    const plan = await checkVector((f) => {
      const [x1, x2] = [f.param([8, 12]), f.param([8, 16])];
      const sum = ap("add", matmul(x1, f.param([12, 8])), matmul(x2, f.param([16, 8])));
      const p = f.param([2, 4, 4, 8]); // [batch, heads, seq, head dim]
      const merged = node("reshape", [node("permute", [p], { perm: [0, 2, 1, 3] })], { shape: [8, 32] });
      return ap("add", sum, matmul(merged, f.param([32, 8])));
    });
    const forward = matmulKernels(plan).filter((k) => k.name.startsWith("f"));
    assert.ok(forward.length >= 1 && forward.every(vectorized), "every forward product reads vec4s");
  });
  await t.step("an MLP training step's gradients", async () => {
    const plan = await checkVector((f) => {
      const h = ap(
        "tanh",
        ap("add", matmul(f.param([16, 32]), f.param([32, 64])), broadcast(f.param([64]), [16, 64])),
      );
      return matmul(h, f.param([64, 8]));
    });
    assert.ok(matmulKernels(plan).filter(vectorized).length >= 3);
  });
  await t.step("n = 261 cannot be read as vec4s: scalar loads, same values", async () => {
    const plan = await checkVector((f) => matmul(f.param([5, 8]), f.param([8, 261])));
    const forward = matmulKernels(plan).filter((k) => k.name.startsWith("f"));
    assert.ok(forward.length > 0);
    for (const k of forward) {
      // The arena offsets are a uniform array of vec4<u32>; no storage binding or load is a vec4.
      const storage = k.wgsl.replace(/^.*var<uniform> arena_offsets.*$/m, "").replace(
        /arena_offsets\[\d+\]/g,
        "",
      );
      assert.ok(!/vec4/.test(storage), `${k.name} declares or loads no vec4`);
    }
  });
  await t.step("f16 storage: half arenas read as vec4<f16>", async () => {
    const plan = await checkVector((f) => {
      const h = ap("tanh", matmul(f.param([16, 32]), f.param([32, 64])));
      return matmul(h, f.param([64, 16]));
    }, { storage: "f16", tol: 2e-2 });
    assert.ok(
      matmulKernels(plan).some((k) => vectorized(k) && /half\d*: array<vec4<f16>>/.test(k.wgsl)),
      "some product reads a half arena as vec4s",
    );
  });
});

Deno.test("a small Transfusion train step: the vector variant's loss and gradients equal the register one's", async () => {
  const model = demo as AnyModel;
  const planFor = (variant: MatmulVariant) =>
    compile(model, {
      config: SMALL_DEMO,
      dims: { batch: 2 },
      entries: ["trainStep"],
      matmulVariant: () => variant,
    });
  const vector = planFor(VECTOR);
  const register = planFor({ ...VECTOR, kind: "register" });
  // Heads, merged q/k/v and gate/up products, their transposes in the backward pass.
  const products = matmulKernels(vector);
  const reading = products.filter(vectorized).length;
  assert.ok(reading >= products.length / 3, `${reading} of ${products.length} products read vec4s`);
  assert.ok(!matmulKernels(register).some(vectorized));
  const batch = model.data!(vector.config as never, vector.dims).batch(0, 3);
  const run = async (plan: Plan) => {
    const executor = await Executor.create(plan, { seed: 5 });
    try {
      const out = await executor.run("trainStep", batch, { lr: 0 });
      const grads = await Promise.all(plan.params.map((p) => executor.getGradient(p.path)));
      return { loss: out.loss!, grads };
    } finally {
      executor.destroy();
    }
  };
  const [got, want] = [await run(vector), await run(register)];
  closeEnough("loss", got.loss, want.loss, 1e-5);
  vector.params.forEach((p, i) => {
    const scale = Math.max(1e-6, ...Array.from(want.grads[i]!, Math.abs));
    const err = Math.max(...Array.from(got.grads[i]!, (g, j) => Math.abs(g - want.grads[i]![j]!)));
    assert.ok(err <= 1e-4 * scale, `d loss / d ${p.path}: max error ${err} against scale ${scale}`);
  });
});
