/**
 * f16 activation storage (ModelDef.precision): intermediates live in `half` arenas as f16 while
 * every kernel computes in f32. The plan's shape (what goes where, what it needs of the device),
 * its values against the f64 interpreter, a short Transfusion training run against the f32 plan,
 * and the refusal of a device without "shader-f16".
 */
import assert from "node:assert/strict";
import { compile, compileGraph } from "../compiler/compile.ts";
import { grad, scaledGrad } from "../compiler/autodiff.ts";
import { interpret } from "../compiler/interpreter.ts";
import { type Node, node } from "../compiler/ir/mod.ts";
import type { Plan } from "../compiler/plan.ts";
import { isHalfArena } from "../kernels/wgsl.ts";
import { Executor } from "../runtime/executor.ts";
import { checkFeatures, checkPlan } from "../runtime/_plan_check.ts";
import type { DeviceHandle } from "../runtime/device.ts";
import { type LogRecord, train } from "../runtime/train/mod.ts";
import { type AnyModel, DEFAULT_F16_LOSS_SCALE, input, linear, lossScaleOf, model } from "../spec/mod.ts";
import { transfusion } from "../spec/transfusion/mod.ts";
import demo from "../examples/transfusion_demo.ts";
import { SMALL_DEMO } from "./fixtures/small_demo.ts";
import { gradientsBesideInterpreter } from "./fixtures/gpu_gradients.ts";
import { Fixture, seeded, uniform } from "./conformance_cases.ts";

/** A three-layer MLP regression; wide enough that its activations pass the small-tensor rule. */
const mlp = (storage: "f32" | "f16") =>
  model({
    name: "mlp",
    config: { dim: 32, hidden: 64 },
    dims: { batch: 16 },
    precision: { storage },
    params: (c) => ({
      l1: linear(c.dim, c.hidden),
      l2: linear(c.hidden, c.hidden),
      l3: linear(c.hidden, 1),
    }),
    inputs: (c) => ({ x: input("f32", ["batch", c.dim]), y: input("f32", ["batch", 1]) }),
    loss: (p, { x, y }) => p.l3(p.l2(p.l1(x).tanh()).tanh()).sub(y).square().mean(),
  });

/** SMALL_DEMO's shape as transfusion() options, for a spec built in the test. */
const SMALL_OPTIONS = {
  backbone: { dim: 16, depth: 1, hidden: 32, heads: 2 },
  text: { vocab: 261 as const, captionLength: 4 },
  image: { size: 8, patch: 4 },
  diffusion: { T: 50, noiseLimit: 25 },
};

const halfBuffers = (plan: Plan) => plan.buffers.filter((b) => isHalfArena(b.name));

/** The structural promises of an f16 plan: what is in a half arena and what never is. */
function checkHalfPlan(plan: Plan) {
  assert.ok(halfBuffers(plan).length > 0, "the plan has half arenas");
  assert.deepEqual(plan.features, ["shader-f16"]);
  for (const b of halfBuffers(plan)) assert.equal(b.bytes % 4, 0, `${b.name} is whole words`);
  let bindsHalf = 0;
  for (const k of plan.kernels) {
    const half = k.bindings.some((b) => isHalfArena(b.buffer));
    bindsHalf += half ? 1 : 0;
    assert.equal(k.wgsl.startsWith("enable f16;"), half, `${k.name}: enable f16 iff it binds a half arena`);
    // Scalar kernels declare f16 elements; vec4-reading matmuls declare vec4<f16>.
    if (half) assert.match(k.wgsl, /var<storage, read(_write)?> half\d*: array<(f16|vec4<f16>)>/, k.name);
  }
  assert.ok(bindsHalf > 0, "some kernel binds a half arena");
  for (const [name, e] of Object.entries(plan.entries)) {
    for (const s of [...e.inputs, ...e.outputs]) {
      assert.ok(!isHalfArena(s.buffer), `entry ${name} slot ${s.name} is in ${s.buffer}`);
    }
    for (const step of e.steps) {
      if (step.kind === "copy") assert.ok(!isHalfArena(step.from.buffer), `entry ${name} copies from half`);
    }
    assert.ok((e.halfPeakBytes ?? 0) <= e.peakBytes, name);
  }
  for (const s of plan.state ?? []) assert.ok(!isHalfArena(s.buffer), `state ${s.name} in ${s.buffer}`);
}

Deno.test("f16 storage: plan shape", async (t) => {
  await t.step("an MLP train step: half arenas, enable f16, f32 slots, a smaller peak", () => {
    const f32 = compile(mlp("f32"));
    const f16 = compile(mlp("f16"));
    assert.equal(halfBuffers(f32).length, 0);
    assert.equal(f32.features, undefined);
    assert.ok(f32.kernels.every((k) => !k.wgsl.includes("enable f16")));
    assert.ok(Object.values(f32.entries).every((e) => e.halfPeakBytes === undefined));
    checkHalfPlan(f16);
    // Parameters, gradients and optimizer moments keep their f32 sizes.
    for (const name of ["params", "grads", "adam_m", "adam_v"]) {
      const size = (p: Plan) => p.buffers.find((b) => b.name === name)!.bytes;
      assert.equal(size(f16), size(f32), name);
    }
    // Most of the peak is f32 intermediates that become f16: the ratio is well under 1, though not
    // 0.5 (inputs, outputs, the grad-norm scratch and row statistics stay f32).
    const ratio = f16.entries.trainStep!.peakBytes / f32.entries.trainStep!.peakBytes;
    assert.ok(ratio < 0.75, `f16 / f32 peak bytes = ${ratio.toFixed(3)}`);
    const forward = f16.entries.forward!.peakBytes / f32.entries.forward!.peakBytes;
    assert.ok(forward < 0.75, `forward: f16 / f32 peak bytes = ${forward.toFixed(3)}`);
  });

  await t.step("half arenas spill like act arenas when one binding cannot hold them", () => {
    const plan = compile(mlp("f16"), { maxBindingBytes: 4096 });
    checkHalfPlan(plan);
    const names = halfBuffers(plan).map((b) => b.name);
    assert.ok(names.length > 1 && names[0] === "half" && names[1] === "half1", `half arenas: ${names}`);
    for (const b of plan.buffers.filter((b) => b.role === "activation")) {
      assert.ok(b.bytes <= 4096, `${b.name}: ${b.bytes} bytes`);
    }
    assert.ok(plan.kernels.some((k) => k.bindings.some((b) => b.buffer === "half1")));
  });

  await t.step("the f16 fields survive a JSON round trip and pass the plan checks", () => {
    const plan = compile(mlp("f16"));
    const reloaded = JSON.parse(JSON.stringify(plan)) as Plan;
    assert.deepEqual(reloaded, plan);
    checkPlan(reloaded);
    assert.ok(reloaded.entries.trainStep!.halfPeakBytes! > 0);
    assert.throws(() => checkPlan({ ...plan, features: [7] } as unknown as Plan), /features lists 7/);
  });

  await t.step("Transfusion with --set precision.storage=f16, stateful entries included", () => {
    const dims = { batch: 2 };
    const config = { ...SMALL_DEMO, "precision.storage": "f16" };
    const plan = compile(demo, { config, dims, entries: ["trainStep", "prefill", "decode"] });
    checkHalfPlan(plan);
    assert.ok((plan.state ?? []).length > 0, "the cached entries carry a KV cache");
    assert.deepEqual((plan.config as { precision: unknown }).precision, { storage: "f16" });
    // f32 (the default) leaves the key out of the config, so older checkpoints' configs still match.
    const f32 = compile(demo, { config: SMALL_DEMO, dims, entries: ["trainStep"] });
    assert.ok(!("precision" in (f32.config as object)), "no precision key in an f32 config");
    assert.equal(halfBuffers(f32).length, 0);
    // A spec that asks for f16 in its options keeps it without any override.
    const f16Spec = transfusion({ ...SMALL_OPTIONS, precision: { storage: "f16" } });
    checkHalfPlan(compile(f16Spec, { dims, entries: ["forward"] }));
  });

  await t.step("a bad precision.storage is refused, naming the key", () => {
    assert.throws(
      () => compile(demo, { config: { ...SMALL_DEMO, "precision.storage": "f8" }, entries: ["forward"] }),
      /precision\.storage.*"f8".*"f32", "f16"/,
    );
  });
});

// ---- values against the interpreter ----

/**
 * f16 keeps 11 significant bits: each stored intermediate is rounded with relative error at most
 * 2^-11 = 4.9e-4. A value here passes through up to ~6 stored tensors (forward, then backward
 * through the same chain), and a sum of n rounded terms has error ~ sqrt(n) roundings of the
 * largest term relative to the result's scale. So the error is measured against the tensor's
 * largest magnitude: 6 roundings * 4.9e-4 ~ 3e-3, doubled for the sums in gradients: 6e-3.
 * Measured on lavapipe: at most 1.3e-3 (a gradient); the f32 plans of tests/fusion_test.ts agree
 * to 2e-5, so the f16 error is well apart from f32's and well inside the bound.
 */
const F16_TOL = 6e-3;

const ap = (op: "add" | "sub" | "mul" | "tanh", ...src: Node[]) => node(op, src, null);
const full = (value: number, shape: readonly number[]) => node("const", [], { value, shape, dtype: "f32" });
const rowsOf = (x: Node, stat: Node) => node("expand", [stat], { shape: x.shape });
const sumAll = (x: Node) =>
  node("reshape", [node("sum", [x], { axes: x.shape.map((_, i) => i) })], { shape: [] });

/** RMSNorm with a gain, a product, tanh, a second product and a softmax over rows. */
function normMlpSoftmax(f: Fixture): Node {
  const x = f.param([6, 5, 16]);
  const meanSquare = ap("mul", node("sum", [ap("mul", x, x)], { axes: [2] }), full(1 / 16, [6, 5, 1]));
  const inv = node("rsqrt", [ap("add", meanSquare, full(1e-5, [6, 5, 1]))], null);
  const gain = node("expand", [node("reshape", [f.param([16])], { shape: [1, 1, 16] })], {
    shape: [6, 5, 16],
  });
  const normed = node("reshape", [ap("mul", ap("mul", x, rowsOf(x, inv)), gain)], { shape: [30, 16] });
  const h = ap("tanh", node("matmul", [normed, f.param([16, 24])], null));
  const z = node("matmul", [h, f.param([24, 12])], null);
  const e = node("exp", [ap("sub", z, rowsOf(z, node("reduce_max", [z], { axes: [1] })))], null);
  return node("div", [e, rowsOf(e, node("sum", [e], { axes: [1] }))], null);
}

/** Largest |gpu - reference| over the reference's largest magnitude. */
function scaledError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(got.length, ref.length);
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return err / (scale || 1);
}

Deno.test("f16 storage: forward and gradients on WebGPU match the interpreter", async () => {
  const f = new Fixture(seeded(7));
  f.caseName = "f16";
  const out = normMlpSoftmax(f);
  const loss = sumAll(ap("mul", out, f.input(out.shape, "f32", uniform(-1, 1))));
  const plan = compileGraph({ out, loss }, { grads: true, storage: "f16" });
  checkHalfPlan(plan);
  const compared = await gradientsBesideInterpreter(plan, f, out, loss);
  const errors = Object.fromEntries(compared.map((c) => [c.what, scaledError(c.got, c.want)]));
  for (const [what, err] of Object.entries(errors)) {
    assert.ok(err <= F16_TOL, `${what}: scaled error ${err.toExponential(2)} > ${F16_TOL}`);
  }
  console.log(
    `f16 scaled errors: ${Object.entries(errors).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(", ")}`,
  );
  // The intermediates really were rounded to f16: some value is off by more than f32 rounding.
  assert.ok(Math.max(...Object.values(errors)) > 1e-5, `errors ${JSON.stringify(errors)}`);
});

Deno.test("f16 storage: loss scaling keeps small gradients out of f16's subnormal range", async () => {
  const f = new Fixture(seeded(11));
  f.caseName = "f16-scale";
  const out = normMlpSoftmax(f);
  // Weights of 1e-6: the size of a mean over ~10^6 terms, so the stored activation gradients are
  // ~1e-6..1e-8, where f16 keeps few or no significant bits (subnormal below 6.1e-5).
  const loss = sumAll(ap("mul", out, f.input(out.shape, "f32", uniform(-1e-6, 1e-6))));
  const worstGradientError = async (lossScale: number) => {
    const plan = compileGraph({ out, loss }, { grads: true, storage: "f16", lossScale });
    const compared = await gradientsBesideInterpreter(plan, f, out, loss);
    const grads = compared.filter((c) => c.what.startsWith("d/d"));
    assert.equal(grads.length, 4);
    return Math.max(...grads.map((c) => scaledError(c.got, c.want)));
  };
  const unscaled = await worstGradientError(1);
  const scaled = await worstGradientError(1024);
  console.log(
    `f16 gradients of a 1e-6 loss: scaled error ${unscaled.toExponential(1)} unscaled, ` +
      `${scaled.toExponential(1)} with loss scale 1024`,
  );
  assert.ok(scaled <= F16_TOL, `with loss scaling: ${scaled} > ${F16_TOL}`);
  assert.ok(unscaled > 4 * scaled, `scaling must help: ${unscaled} vs ${scaled}`);
});

Deno.test("loss scaling in a train step: grads hold S x dL/dp, the reported norm is unscaled", async () => {
  // Clipping off: with it on, a missing unscale would be hidden (the clip normalizes the gradient).
  const step = async (storage: "f32" | "f16", lossScale?: number) => {
    const spec = lossScale === undefined
      ? mlp(storage)
      : { ...mlp(storage), precision: { storage, lossScale } };
    const plan = compile(spec as AnyModel, { optimizer: { clipNorm: 0 } });
    const executor = await Executor.create(plan, { seed: 5 });
    try {
      const x = Float32Array.from({ length: 16 * 32 }, (_, i) => Math.sin(1.3 * i));
      const y = Float32Array.from({ length: 16 }, (_, i) => Math.cos(0.7 * i));
      await executor.run("trainStep", { x, y }, { lr: 1e-3 });
      return { norm: await executor.getScalar("gradNorm"), g: await executor.getGradient("l1.w") };
    } finally {
      executor.destroy();
    }
  };
  const f32 = await step("f32");
  const f16 = await step("f16");
  const unscaled = await step("f16", 1);
  assert.ok(Math.abs(f16.norm - f32.norm) <= 1e-2 * f32.norm, `norm ${f16.norm} vs f32 ${f32.norm}`);
  assert.ok(Math.abs(unscaled.norm - f32.norm) <= 1e-2 * f32.norm, `unscaled plan: ${unscaled.norm}`);
  let ratio = 0, n = 0;
  for (let i = 0; i < f32.g.length; i++) {
    if (Math.abs(f32.g[i]!) < 1e-4 * f32.norm) continue;
    ratio += f16.g[i]! / f32.g[i]!;
    n++;
  }
  assert.ok(n > 100, `${n} comparable gradient elements`);
  assert.ok(
    Math.abs(ratio / n - DEFAULT_F16_LOSS_SCALE) < 0.01 * DEFAULT_F16_LOSS_SCALE,
    `mean ratio ${ratio / n}`,
  );
});

Deno.test("loss scaling: the scale is undone exactly, and a bad scale is named", () => {
  const f = new Fixture(seeded(12));
  const x = f.param([4, 3]);
  const loss = sumAll(ap("mul", ap("tanh", x), f.input([4, 3], "f32", uniform(-1, 1))));
  const env = { params: f.params, inputs: f.inputs };
  const [plain] = interpret(grad(loss, [x]), env);
  const [scaled] = interpret(scaledGrad(loss, [x], 1024), env);
  assert.deepEqual([...scaled!.data], [...plain!.data], "a power-of-two scale and its inverse are exact");
  assert.equal(lossScaleOf({ storage: "f16" }), 1024);
  assert.equal(lossScaleOf({ storage: "f32" }), 1);
  assert.equal(lossScaleOf({ storage: "f16", lossScale: 64 }), 64);
  const bad = model({
    name: "bad_scale",
    config: {},
    precision: { storage: "f16", lossScale: 1000 },
    params: () => ({ l: linear(2, 1) }),
    inputs: () => ({ x: input("f32", [2, 2]) }),
    loss: (p, { x }) => p.l(x).mean(),
  });
  assert.throws(() => compile(bad), /precision\.lossScale = 1000; expected a power of two from 1 to 2\^24/);
});

// ---- a short training run ----

const TRAIN_STEPS = 20;
/**
 * Relative deviation allowed between the f16 and f32 runs' losses at each step. Both start from the
 * same parameters and batches. The loss itself stays f32 (a tiny tensor); it is a mean over
 * thousands of terms whose f16 roundings (2^-11 relative each) are independent, so they mostly
 * cancel, and the updates drift the parameters apart only slowly at lr 1e-3. Measured on lavapipe:
 * at most 0.005% over 24 steps. 0.1% is 20x that and about two f16 roundings of the loss: room for
 * other adapters' transcendental functions, while a broken f16 path (a wrong offset or element size)
 * is off by far more from the first step.
 */
const TRAIN_TOL = 1e-3;

async function trainLosses(storage: "f32" | "f16"): Promise<readonly LogRecord[]> {
  const out = await Deno.makeTempDir({ prefix: `f16_storage_${storage}_` });
  try {
    const result = await train({
      model: demo as AnyModel,
      specPath: new URL("../examples/transfusion_demo.ts", import.meta.url).pathname,
      out,
      config: { ...SMALL_DEMO, "precision.storage": storage },
      dims: { batch: 4 },
      settings: {
        steps: TRAIN_STEPS,
        logEvery: 1,
        checkpointEvery: 1000,
        sampleEvery: 0,
        warmup: 4,
        lr: 1e-3,
        seed: 3,
      },
    });
    const precision = (result.config as { precision?: { storage: string } }).precision?.storage ?? "f32";
    assert.equal(precision, storage);
    return result.records;
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test("f16 storage: a tiny Transfusion trains like the f32 plan, step by step", async () => {
  const f32 = await trainLosses("f32");
  const f16 = await trainLosses("f16");
  assert.equal(f32.length, TRAIN_STEPS);
  assert.equal(f16.length, TRAIN_STEPS);
  let worst = 0;
  for (const [i, a] of f32.entries()) {
    const b = f16[i]!;
    assert.equal(b.step, a.step);
    assert.ok(Number.isFinite(b.loss), `f16 loss at step ${b.step}: ${b.loss}`);
    const dev = Math.abs(b.loss - a.loss) / Math.abs(a.loss);
    worst = Math.max(worst, dev);
    assert.ok(
      dev <= TRAIN_TOL,
      `step ${a.step}: f16 loss ${b.loss} vs f32 ${a.loss} (${(dev * 100).toFixed(3)}%)`,
    );
  }
  console.log(
    `f16 vs f32 loss over ${TRAIN_STEPS} steps: max relative deviation ${(worst * 100).toFixed(4)}%`,
  );
  // The f16 run is not the f32 run under another name.
  assert.ok(worst > 0, "the f16 losses differ from the f32 losses somewhere");
});

// ---- refusal ----

Deno.test("f16 storage: a device without shader-f16 is refused, naming the feature", async () => {
  const plan = compile(mlp("f16"));
  assert.throws(
    () => checkFeatures(plan, new Set(["timestamp-query"]), "Test Adapter"),
    (e: Error) =>
      e.name === "DeviceError" && /"shader-f16"/.test(e.message) && /"Test Adapter"/.test(e.message) &&
      /timestamp-query/.test(e.message),
  );
  assert.doesNotThrow(() => checkFeatures(plan, new Set(["shader-f16"]), "Test Adapter"));
  assert.doesNotThrow(() => checkFeatures(compile(mlp("f32")), new Set(), "Test Adapter"));
  // Through the executor: the check runs before any GPU object is made, so a bare device will do.
  const handle = {
    adapter: { info: { description: "Fake Adapter", vendor: "", architecture: "" } },
    device: { features: new Set<string>() },
  } as unknown as DeviceHandle;
  await assert.rejects(
    Executor.create(plan, { handle }),
    (e: Error) => /shader-f16/.test(e.message) && /Fake Adapter/.test(e.message),
  );
});
