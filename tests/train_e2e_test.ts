/**
 * End to end: specs compile to plans that train on WebGPU. For the first step the loss and every
 * gradient match the reference interpreter; over a short run the loss falls on real data.
 */
import assert from "node:assert/strict";
import mlp from "../examples/mlp.ts";
import transformer from "../examples/transformer.ts";
import { compile, grad, interpret, type Plan } from "../compiler/mod.ts";
import { trace } from "../spec/mod.ts";
import { Executor } from "../runtime/mod.ts";
import { loadMnist, MNIST_PIXELS } from "../data/mod.ts";
import { summarize } from "../cli/explain.ts";
import type { AnyModel } from "../spec/mod.ts";

/** Gradients are compared relative to the largest magnitude of each parameter's gradient. */
const GRAD_TOLERANCE = 1e-4;
const LOSS_TOLERANCE = 1e-5;

async function checkFirstStep(model: AnyModel, plan: Plan, ex: Executor, inputs: Record<string, number[]>) {
  const params: Record<string, Float32Array> = {};
  for (const p of plan.params) params[p.path] = await ex.getParam(p.path);
  const traced = trace(model, { dims: plan.dims as Record<string, number> });
  const grads = grad(traced.outputs.loss!, traced.params.map((p) => p.node));
  const ref = interpret([traced.outputs.loss!, ...grads], { params, inputs });
  const out = await ex.run("trainStep", inputs, { lr: 0 });
  const refLoss = ref[0]!.data[0]!;
  assert.ok(
    Math.abs(out.loss![0]! - refLoss) <= LOSS_TOLERANCE * Math.max(1, Math.abs(refLoss)),
    `loss ${out.loss} vs ${refLoss}`,
  );
  let worst = 0;
  for (const [i, p] of plan.params.entries()) {
    const gpu = await ex.getGradient(p.path);
    const r = ref[i + 1]!.data;
    const scale = r.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
    for (let j = 0; j < r.length; j++) {
      const err = Math.abs(gpu[j]! - r[j]!) / scale;
      worst = Math.max(worst, err);
      assert.ok(err <= GRAD_TOLERANCE, `${p.path}[${j}]: gpu ${gpu[j]} vs interpreter ${r[j]}`);
    }
  }
  return worst;
}

function allKernelsRan(plan: Plan, ex: Executor, entries: string[]) {
  const counts = ex.dispatchCounts();
  for (const name of entries) {
    for (const step of plan.entries[name]!.steps) {
      if (step.kind === "dispatch") {
        assert.ok(counts[step.kernel]! > 0, `kernel ${plan.kernels[step.kernel]!.name} never ran`);
      }
    }
  }
}

Deno.test("MLP trains on MNIST; first step matches the interpreter", async () => {
  const batch = 32;
  const plan = compile(mlp, { dims: { batch }, verify: true });
  const ex = await Executor.create(plan, { seed: 7 });
  const { train, test } = loadMnist();
  const batchAt = (set: typeof train, start: number) => {
    const x: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < batch; i++) {
      const k = (start + i) % set.count;
      x.push(...set.images.subarray(k * MNIST_PIXELS, (k + 1) * MNIST_PIXELS));
      y.push(set.labels[k]!);
    }
    return { x, y };
  };
  await checkFirstStep(mlp, plan, ex, batchAt(train, 0));
  const evalLoss = async () => {
    let loss = 0, acc = 0;
    for (let b = 0; b < 8; b++) {
      const out = await ex.run("forward", batchAt(test, b * batch));
      loss += out.loss![0]! / 8;
      acc += out.accuracy![0]! / 8;
    }
    return { loss, acc };
  };
  const before = await evalLoss();
  for (let step = 0; step < 150; step++) {
    await ex.run("trainStep", batchAt(train, step * batch), { lr: 3e-3 });
  }
  const after = await evalLoss();
  assert.ok(after.loss < before.loss * 0.5, `held-out loss ${before.loss} -> ${after.loss}`);
  assert.ok(after.acc > 0.8, `held-out accuracy ${after.acc}`);
  allKernelsRan(plan, ex, ["trainStep", "forward"]);
  ex.destroy();
});

const TEXT = "Transfusion trains one transformer on text and images: text by next-token prediction, " +
  "images by diffusion. ";
const DIMS = { batch: 4, seq: 16 };

Deno.test("2-layer transformer memorizes a text; its explain plan is the plan that ran", async () => {
  const plan = compile(transformer, { dims: DIMS, verify: true });
  const ex = await Executor.create(plan, { seed: 3 });
  const bytes = new TextEncoder().encode(TEXT);
  const batchAt = (step: number) => {
    const tokens: number[] = [];
    const targets: number[] = [];
    for (let b = 0; b < DIMS.batch; b++) {
      const start = (step * 5 + b * 23) % (bytes.length - DIMS.seq - 1);
      for (let t = 0; t < DIMS.seq; t++) {
        tokens.push(bytes[start + t]!);
        targets.push(bytes[start + t + 1]!);
      }
    }
    return { tokens, targets };
  };
  await checkFirstStep(transformer, plan, ex, batchAt(0));
  const first = (await ex.run("forward", batchAt(0))).loss![0]!;
  let last = first;
  for (let step = 0; step < 120; step++) {
    last = (await ex.run("trainStep", batchAt(step), { lr: 3e-3 })).loss![0]!;
  }
  assert.ok(first > 5, `initial loss ${first} should be near ln 256`);
  assert.ok(last < 1.0, `loss after 120 steps: ${last}`);
  allKernelsRan(plan, ex, ["trainStep", "forward"]);

  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "cli/explain.ts",
      "examples/transformer.ts",
      "--json",
      "--dim",
      "batch=4",
      "--dim",
      "seq=16",
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const res = await cmd.output();
  assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
  const printed = JSON.parse(new TextDecoder().decode(res.stdout));
  assert.deepEqual(printed, summarize(plan));
  ex.destroy();
});
