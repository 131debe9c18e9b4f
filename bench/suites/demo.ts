/**
 * The demo's training steps: the spec `deno task demo` trains (examples/transfusion_demo_cpu.ts:
 * dim 64, depth 3, head dim 16, 21 positions, batch 32) and the shipped checkpoint's spec
 * (examples/transfusion_demo.ts: the same backbone over 41 positions). Each step is the plan `deno task train` builds for it, on the present adapter: median ms per
 * step through `Executor.run`, its roofline bound at the stated cpu peaks (cli/explain.ts) and the
 * ratio measured / bound, dispatches per step; then where the time goes: GPU time per kernel kind
 * and the top kernels by GPU time beside their bounds (runtime/profile, timestamp queries where the
 * adapter has them, median of the profiled steps). Small shapes are where lavapipe loses most, so
 * this is the suite that says whether a kernel or tile choice for them helped.
 */
import { parseArgs } from "node:util";
import demoCpu from "../../examples/transfusion_demo_cpu.ts";
import demoShipped from "../../examples/transfusion_demo.ts";
import type { AnyModel } from "../../spec/mod.ts";
import { describeAdapter, Executor, openDevice } from "../../runtime/mod.ts";
import { medianKernelTimes } from "../../runtime/profile/mod.ts";
import { measuredEntry, PEAKS, roofline, summarize } from "../../cli/explain.ts";
import { profilePlan, trainingPlan } from "../../cli/_profile_run.ts";
import { report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean", default: false }, top: { type: "string", default: "10" } },
});
const handle = await openDevice();
const adapter = describeAdapter(handle);
const steps = values.quick ? 5 : 15;
const profiled = values.quick ? 2 : 3;

/** Times `spec`'s training step and profiles its kernels; rows are prefixed with `label`. */
async function measure(label: string, spec: AnyModel) {
  const t0 = performance.now();
  const plan = trainingPlan(spec, handle, { entry: "trainStep", config: {}, dims: {} });
  const compileMs = performance.now() - t0;
  const data = spec.data!(plan.config as never, plan.dims);
  const lr = spec.training?.lr ?? 1e-3;

  const ex = await Executor.create(plan, { seed: 1, handle, lr });
  const tFirst = performance.now();
  await ex.run("trainStep", data.batch(0, 0), { lr }); // builds every pipeline
  const firstMs = performance.now() - tFirst;
  await ex.run("trainStep", data.batch(1, 0), { lr });
  const times: number[] = [];
  for (let step = 2; step < steps + 2; step++) {
    const batch = data.batch(step, 0);
    const s0 = performance.now();
    await ex.run("trainStep", batch, { lr });
    times.push(performance.now() - s0);
  }
  ex.destroy();
  const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;

  const s = summarize(plan);
  const boundMs = roofline(plan, PEAKS.cpu).totalMs;
  const batch0 = data.batch(0, 0);
  const inputs = Object.fromEntries(
    plan.entries.trainStep!.inputs.filter((i) => i.name !== "seed").map((i) => [i.name, batch0[i.name]!]),
  );
  const profiles = await profilePlan(plan, "trainStep", inputs, { handle, lr, warmup: 1, steps: profiled });
  const m = measuredEntry(plan, "trainStep", PEAKS.cpu, medianKernelTimes(profiles), {
    timing: profiles[0]!.timing,
    steps: profiled,
  });

  const rows: SuiteResult["rows"] = [{
    row: `${label} trainStep`,
    "step ms (median)": ms,
    "roofline bound ms": boundMs,
    "measured / bound": ms / boundMs,
    "GPU ms (profiled)": m.totalMeasuredMs,
    dispatches: s.dispatches_per_step,
    "GFLOP/step": s.flops_per_step / 1e9,
    "MB/step": s.bytes_per_step / 1e6,
    "compile ms": compileMs,
    "first step ms": firstMs,
  }];
  // GPU time and bound per kernel kind (the kernel's name without its index: matmul, attention_grad_kv,
  // scatter_add, adamw, ...), largest first.
  const kind = (name: string) => name.replace(/^t\d+_/, "");
  const byKind = new Map<string, { n: number; measured: number; bound: number }>();
  for (const k of m.kernels) {
    const e = byKind.get(kind(k.name)) ?? { n: 0, measured: 0, bound: 0 };
    byKind.set(kind(k.name), {
      n: e.n + k.dispatches,
      measured: e.measured + k.measuredMs,
      bound: e.bound + k.boundMs,
    });
  }
  for (const [name, e] of [...byKind].sort((a, b) => b[1].measured - a[1].measured).slice(0, 8)) {
    rows.push({
      row: `${label} kind ${name}`,
      dispatches: e.n,
      "GPU ms (profiled)": e.measured,
      "roofline bound ms": e.bound,
      "measured / bound": e.measured / e.bound,
    });
  }
  for (const k of m.kernels.slice(0, Number(values.top))) {
    rows.push({
      row: `${label} kernel ${k.name}`,
      dispatches: k.dispatches,
      "GPU ms (profiled)": k.measuredMs,
      "roofline bound ms": k.boundMs,
      "measured / bound": k.measuredMs / k.boundMs,
    });
  }
  return {
    rows,
    ratio: ms / boundMs,
    gpuRatio: m.totalMeasuredMs / boundMs,
    note:
      `${label}: batch ${plan.dims.batch}, seq ${plan.dims.seq}; ${steps} timed steps after 2 warm-ups; ` +
      `GPU times: ${m.timing}, median of ${profiled} profiled steps`,
  };
}

const trained = await measure("demo (transfusion_demo_cpu)", demoCpu);
const shipped = await measure("shipped (transfusion_demo)", demoShipped);
report({
  suite: "demo",
  rows: [...trained.rows, ...shipped.rows],
  ratios: {
    "demo step (the spec the demo trains), measured / roofline bound": trained.ratio,
    "demo GPU time, measured / roofline bound": trained.gpuRatio,
    "shipped spec step, measured / roofline bound": shipped.ratio,
  },
  notes: [`adapter: ${adapter.name} (${adapter.adapterClass})`, trained.note, shipped.note],
});
