import assert from "node:assert/strict";
import type { ParamLayout, Plan, TensorSlot } from "../compiler/plan.ts";
import { bindingDecl, type Kernel, type KernelBinding } from "../kernels/kernel.ts";
import {
  adamwKernel,
  gradNormKernels,
  gradNormScratchWords,
  SCALAR_COUNT,
  SCALARS,
} from "../kernels/optimizer.ts";
import { Executor, initParams } from "../runtime/mod.ts";

const N = 300; // not a multiple of the workgroup size
const [X, OUT, TOKENS, NEXT, SEED, SEED_OUT] = [0, N, 2 * N, 2 * N + 5, 2 * N + 10, 2 * N + 12];

const slot = (name: string, shape: number[], dtype: TensorSlot["dtype"], offset: number, buffer = "act") => ({
  name,
  shape,
  dtype,
  buffer,
  offset,
});

const param = (path: string, offset: number, shape: number[], init: ParamLayout["init"], decay = true) => ({
  path,
  shape,
  dtype: "f32" as const,
  offset,
  init,
  decay,
  frozen: false,
});

function kernel(name: string, bindings: KernelBinding[], threads: number, body: string): Kernel {
  return {
    name,
    doc: name,
    ops: [name],
    wgsl: `${bindings.map(bindingDecl).join("\n")}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${threads}u) { return; }
  ${body}
}`,
    workgroupSize: [64, 1, 1],
    dispatch: [Math.ceil(threads / 64), 1, 1],
    bindings,
    flops: threads,
    bytes: 8 * threads,
  };
}

/** out = 2 x + params[0]; next = tokens + 1; seed_out = seed. */
function affinePlan(): Plan {
  const readParams: KernelBinding = { binding: 0, buffer: "params", access: "read" };
  const writeAct: KernelBinding = { binding: 1, buffer: "act", access: "read_write" };
  return {
    version: 1,
    model: "affine",
    config: {},
    dims: { N },
    buffers: [
      { name: "params", role: "parameter", bytes: 4 * 9 },
      { name: "act", role: "activation", bytes: 4 * (SEED_OUT + 2) },
    ],
    kernels: [
      kernel(
        "affine",
        [readParams, writeAct],
        N,
        `act[${OUT}u + i] = bitcast<u32>(2.0 * bitcast<f32>(act[${X}u + i]) + params[0]);`,
      ),
      kernel(
        "ints",
        [writeAct],
        5,
        `act[${NEXT}u + i] = bitcast<u32>(bitcast<i32>(act[${TOKENS}u + i]) + 1);
  if (i < 2u) { act[${SEED_OUT}u + i] = act[${SEED}u + i]; }`,
      ),
    ],
    params: [
      param("bias", 0, [1], { kind: "normal", std: 1 }),
      param("w", 1, [2, 3], { kind: "uniform", bound: 0.1 }),
      param("g", 7, [2], { kind: "ones" }),
    ],
    entries: {
      forward: {
        inputs: [
          slot("x", [3, N / 3], "f32", X),
          slot("tokens", [5], "i32", TOKENS),
          slot("seed", [2], "u32", SEED),
        ],
        outputs: [
          slot("out", [N], "f32", OUT),
          slot("next", [5], "i32", NEXT),
          slot("seed_out", [2], "u32", SEED_OUT),
        ],
        steps: [{ kind: "dispatch", kernel: 0 }, { kind: "dispatch", kernel: 1 }],
        peakBytes: 4 * (SEED_OUT + 2),
        flops: N,
      },
      clearOut: {
        inputs: [],
        outputs: [slot("out", [N], "f32", OUT)],
        steps: [{ kind: "clear", buffer: "act", offset: OUT, words: N }],
        peakBytes: 0,
        flops: 0,
      },
    },
    scalars: {},
  };
}

const xs = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 3);

Deno.test("executor runs a hand-built plan", async (t) => {
  const plan = affinePlan();
  const ex = await Executor.create(plan, { seed: 7 });
  const init = initParams(plan.params, 9, 7);
  const forward = () => ex.run("forward", { x: xs, tokens: [1, -2, 3, 2147483646, 0] });

  await t.step("outputs, with dtypes from the slots", async () => {
    const out = await forward();
    assert.ok(
      out.out instanceof Float32Array && out.next instanceof Int32Array &&
        out.seed_out instanceof Uint32Array,
    );
    assert.deepEqual(out.out, Float32Array.from(xs, (x) => 2 * x + init[0]!));
    assert.deepEqual(out.next, Int32Array.from([2, -1, 4, 2147483647, 1]));
    assert.deepEqual(out.seed_out, Uint32Array.from([7, 0]), "automatic seed is [seed, step]");
    const given = await ex.run("forward", { x: xs, tokens: [0, 0, 0, 0, 0], seed: [5, 6] });
    assert.deepEqual(given.seed_out, Uint32Array.from([5, 6]));
  });

  await t.step("clear steps zero their range", async () => {
    await forward();
    assert.deepEqual((await ex.run("clearOut", {})).out, new Float32Array(N));
  });

  await t.step("parameters start from the seeded init and round-trip", async () => {
    assert.deepEqual(await ex.getParam("w"), init.slice(1, 7));
    assert.deepEqual(await ex.getParam("g"), Float32Array.from([1, 1]));
    await ex.setParam("bias", [0.25]);
    assert.deepEqual(await ex.getParam("bias"), Float32Array.from([0.25]));
    assert.deepEqual((await forward()).out, Float32Array.from(xs, (x) => 2 * x + 0.25));
    const all = await ex.getAllParams();
    assert.deepEqual([...all.keys()], ["bias", "w", "g"]);
    all.set("w", Float32Array.from([1, 2, 3, 4, 5, 6]));
    await ex.setAllParams(all);
    assert.deepEqual(await ex.getParam("w"), Float32Array.from([1, 2, 3, 4, 5, 6]));
    await assert.rejects(ex.setParam("w", [1, 2]), /"w" \[2, 3\] has 6 elements, got 2 values/);
    await assert.rejects(ex.getParam("nope"), /no parameter "nope"; parameters: bias, w, g/);
    await assert.rejects(ex.setAllParams(new Map([["w", [1]]])), /missing paths \[bias, g\]/);
  });

  await t.step("inputs are validated with clear messages", async () => {
    await assert.rejects(
      ex.run("forward", { x: xs.subarray(1), tokens: [0, 0, 0, 0, 0] }),
      /input "x" f32\[3, 100\] expects 300 values, got 299/,
    );
    await assert.rejects(ex.run("forward", { x: xs }), /missing input "tokens" i32\[5\]/);
    await assert.rejects(
      ex.run("forward", { x: xs, tokens: [0, 0, 0, 0, 0], y: [1] }),
      /entry "forward" has no input "y"; inputs: x,tokens,seed/,
    );
    await assert.rejects(
      ex.run("forward", { x: xs, tokens: [0, 0.5, 0, 0, 0] }),
      /"tokens" i32\[5\]: element 1 is 0.5/,
    );
    await assert.rejects(ex.run("backward", {}), /no entry "backward" in plan "affine"/);
    assert.deepEqual((await forward()).next, Int32Array.from([2, -1, 4, 2147483647, 1]), "still usable");
  });

  await t.step("runs create no GPU objects", async () => {
    const before = ex.stats();
    assert.ok(before.pipelines === 2 && before.bindGroups === 2, JSON.stringify(before));
    for (let i = 0; i < 5; i++) await forward();
    await ex.getAllParams();
    assert.deepEqual(ex.stats(), before);
  });

  ex.destroy();
  await assert.rejects(forward(), /destroyed/);
});

Deno.test("executor rejects malformed plans when created", async () => {
  const plan = affinePlan();
  const badStep = {
    ...plan,
    entries: { f: { ...plan.entries.forward!, steps: [{ kind: "dispatch", kernel: 9 }] } },
  };
  await assert.rejects(Executor.create(badStep as Plan), /entry "f" step 0 dispatches kernel 9 of 2/);
  const overrun = {
    ...plan,
    buffers: [plan.buffers[0]!, { name: "act", role: "activation", bytes: 4 * N }],
  } as Plan;
  await assert.rejects(
    Executor.create(overrun),
    /entry "forward" slot "tokens" i32\[5\] covers words \[600, 605\) of "act" \(300 words\)/,
  );
  const badWgsl = { ...plan, kernels: [{ ...plan.kernels[0]!, wgsl: "fn main( {" }, plan.kernels[1]!] };
  await assert.rejects(Executor.create(badWgsl), /kernel 0 "affine" failed to build/);
});

// ---- a train step: grads of 0.5 |p - target|^2, clipped, then AdamW ----

const P = 403;
const OPT = { kind: "adamw" as const, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05, clipNorm: 0.5 };

function trainPlan(): Plan {
  const scratch = P; // after the target
  const grad = kernel(
    "grad",
    [
      { binding: 0, buffer: "params", access: "read" },
      { binding: 1, buffer: "act", access: "read" },
      { binding: 2, buffer: "grads", access: "read_write" },
    ],
    P,
    `grads[i] += params[i] - bitcast<f32>(act[i]);`,
  );
  const state = (name: string, role: "parameter" | "gradient" | "optimizer") => ({
    name,
    role,
    bytes: 4 * P,
  });
  return {
    version: 1,
    model: "train",
    config: {},
    dims: {},
    buffers: [
      state("params", "parameter"),
      state("grads", "gradient"),
      state("adam_m", "optimizer"),
      state("adam_v", "optimizer"),
      { name: "act", role: "activation", bytes: 4 * (P + gradNormScratchWords(P)) },
      { name: "scalars", role: "scalars", bytes: 4 * SCALAR_COUNT },
      { name: "decay_mask", role: "mask", bytes: 4 * Math.ceil(P / 32) },
    ],
    kernels: [grad, ...gradNormKernels(P, scratch), adamwKernel(P)],
    params: [
      param("a", 0, [10, 37], { kind: "normal", std: 0.5 }),
      param("b", 370, [33], { kind: "zeros" }, false),
    ],
    entries: {
      trainStep: {
        inputs: [slot("target", [P], "f32", 0)],
        outputs: [slot("grad_norm", [], "f32", SCALARS.gradNorm, "scalars")],
        steps: [
          { kind: "clear", buffer: "grads", offset: 0, words: P },
          ...[0, 1, 2, 3].map((kernel) => ({ kind: "dispatch" as const, kernel })),
        ],
        peakBytes: 0,
        flops: 0,
      },
    },
    scalars: SCALARS,
    optimizer: OPT,
  };
}

Deno.test("executor train step matches a plain AdamW", async () => {
  const plan = trainPlan();
  const ex = await Executor.create(plan, { seed: 3, lr: 0.05 });
  const p = Float64Array.from(initParams(plan.params, P, 3));
  const [m, v] = [new Float64Array(P), new Float64Array(P)];
  const decays = (i: number) => i < 370;
  const target = Float32Array.from({ length: P }, (_, i) => Math.cos(i * 0.37));
  const stats = ex.stats();

  const noLr = await Executor.create(trainPlan());
  await assert.rejects(noLr.run("trainStep", { target }), /needs a finite learning rate >= 0, got undefined/);
  assert.equal(noLr.step, 0, "a rejected train step does not advance the step");
  noLr.destroy();
  for (const [t, lr] of [[1, 0.05], [2, 0.02], [3, 0.05]] as const) {
    const out = await ex.run("trainStep", { target }, t === 2 ? { lr } : {});
    const grads = Array.from(p, (x, i) => Math.fround(x - target[i]!));
    const norm = Math.sqrt(grads.reduce((s, g) => s + g * g, 0));
    const scale = Math.min(1, OPT.clipNorm / (norm + 1e-6));
    for (let i = 0; i < P; i++) {
      const g = grads[i]! * scale;
      m[i] = OPT.beta1 * m[i]! + (1 - OPT.beta1) * g;
      v[i] = OPT.beta2 * v[i]! + (1 - OPT.beta2) * g * g;
      const update = m[i]! / (1 - OPT.beta1 ** t) / (Math.sqrt(v[i]! / (1 - OPT.beta2 ** t)) + OPT.eps);
      p[i] = p[i]! - lr * (update + (decays(i) ? OPT.weightDecay * p[i]! : 0));
    }
    assert.equal(ex.step, t);
    assert.ok(
      Math.abs(out.grad_norm![0]! - norm) < 1e-5 * norm,
      `step ${t} grad norm ${out.grad_norm} vs ${norm}`,
    );
    assert.ok(Math.abs((await ex.getScalar("clipScale")) - scale) < 1e-6, `step ${t} clip scale`);
    const all = await ex.getAllParams();
    const got = [...all.get("a")!, ...all.get("b")!];
    got.forEach((x, i) => assert.ok(Math.abs(x - p[i]!) < 1e-5, `step ${t} param ${i}: ${x} vs ${p[i]}`));
    const state = await ex.getOptimizerState("b");
    state.m.forEach((x, i) => assert.ok(Math.abs(x - m[370 + i]!) < 1e-6, `step ${t} m ${i}`));
    state.v.forEach((x, i) => assert.ok(Math.abs(x - v[370 + i]!) < 1e-6, `step ${t} v ${i}`));
    const gradient = await ex.getGradient("a");
    gradient.forEach((x, i) => assert.ok(Math.abs(x - grads[i]!) < 1e-6, `step ${t} gradient ${i}`));
  }
  assert.deepEqual(ex.stats(), stats, "train steps create no GPU objects");
  ex.step = 10;
  assert.equal(ex.step, 10);
  assert.throws(() => (ex.step = -1), /non-negative integer, got -1/);
  ex.destroy();
});
