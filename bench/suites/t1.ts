/**
 * T1 (../shared/benchmarks/T1.md) training step: the fused plan against the first (unfused)
 * lowering of the same spec, on the same adapter in the same process: median step ms, dispatches
 * per step, peak activation memory. Where the adapter has shader-f16, the fused plan with f16
 * activation storage (precision.storage) runs beside them. The jax-js peer runs in bench/peers when
 * available.
 */
import { parseArgs } from "node:util";
import t1 from "../../examples/t1.ts";
import { compile } from "../../compiler/mod.ts";
import { describeAdapter, Executor, openDevice } from "../../runtime/mod.ts";
import { PEAKS, roofline, summarize } from "../../cli/explain.ts";
import { resolveConfig } from "../../spec/mod.ts";
import { report, type SuiteResult } from "../main.ts";
import { jaxT1StepMs } from "../peers/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean", default: false }, "no-peers": { type: "boolean", default: false } },
});
const handle = await openDevice();
const adapter = describeAdapter(handle);
const runs = values.quick ? 3 : 7;
const config = resolveConfig(t1.config as never, {}, "t1");
const dims = { ...t1.dims };
const data = t1.data!(config as never, dims);

const rows: SuiteResult["rows"] = [];
const byMode: Record<string, { ms: number; dispatches: number; peak: number; flops: number }> = {};
// Both plans are built and warmed first, then their steps alternate, so a change in the load from
// other processes during the run falls on both alike (timing one plan after the other did not).
const modes = [];
const plans = [
  { mode: "fused", fuse: true, config: {} },
  { mode: "unfused", fuse: false, config: {} },
  ...(adapter.features.shaderF16
    ? [{ mode: "fused f16", fuse: true, config: { "precision.storage": "f16" } }]
    : []),
];
for (const { mode, fuse, config } of plans) {
  const t0 = performance.now();
  const plan = compile(t1, {
    fuse,
    config,
    adapterClass: adapter.adapterClass,
    adapterKey: adapter.cacheKey,
    entries: ["trainStep"],
  });
  const compileMs = performance.now() - t0;
  const ex = await Executor.create(plan, { seed: 1, handle });
  const t1Start = performance.now();
  await ex.run("trainStep", data.batch(0, 1), { lr: 3e-4 }); // first run builds every pipeline
  const firstMs = performance.now() - t1Start;
  modes.push({ mode, plan, ex, compileMs, firstMs, times: [] as number[] });
}
for (let step = 1; step <= runs + 1; step++) {
  for (const m of modes) {
    const t0 = performance.now();
    await m.ex.run("trainStep", data.batch(step, 1), { lr: 3e-4 });
    if (step > 1) m.times.push(performance.now() - t0); // step 1 is a warm-up
  }
}
for (const { mode, plan, ex, compileMs, firstMs, times } of modes) {
  const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const s = summarize(plan);
  byMode[mode] = { ms, dispatches: s.dispatches_per_step, peak: s.peak_bytes, flops: s.flops_per_step };
  rows.push({
    plan: mode,
    "step ms (median)": ms,
    "GFLOP/s": s.flops_per_step / ms / 1e6,
    dispatches: s.dispatches_per_step,
    "peak MB": s.peak_bytes / 1e6,
    // The roofline's lower bound on this machine's stated peaks (cli/explain.ts): how far off it runs.
    "roofline bound ms": roofline(plan, PEAKS.cpu).totalMs,
    kernels: s.kernels,
    "compile ms": compileMs,
    "first step ms": firstMs,
  });
  ex.destroy();
}
// The jax-js peer (bench/peers/t1_jax.ts) in a child process, after ours: same model, same adapter.
const peers: Record<string, number> = {};
// The peer's rate in our plan's FLOPs per step: the same model, so the same useful work (its one-hot
// embedding matmuls do extra arithmetic that is not counted).
const byFlops = (ms: number) => byMode.fused!.flops / ms / 1e6;
const peerNotes: string[] = [];
if (!values["no-peers"]) {
  for (const device of ["webgpu", "wasm"] as const) {
    try {
      const ms = await jaxT1StepMs(device, values.quick ? 2 : 3);
      peers[device] = ms;
      rows.push({ plan: `jax-js ${device}`, "step ms (median)": ms, "GFLOP/s": byFlops(ms) });
    } catch (e) {
      peerNotes.push(`jax-js ${device}: ${(e as Error).message.slice(0, 200)}`);
    }
  }
}
report({
  suite: "t1",
  rows,
  ratios: {
    "step time, unfused / fused": byMode.unfused!.ms / byMode.fused!.ms,
    "dispatches, unfused / fused": byMode.unfused!.dispatches / byMode.fused!.dispatches,
    "peak memory, unfused / fused": byMode.unfused!.peak / byMode.fused!.peak,
    ...(byMode["fused f16"]
      ? {
        "step time, fused f16 / fused": byMode["fused f16"].ms / byMode.fused!.ms,
        "peak memory, fused / fused f16": byMode.fused!.peak / byMode["fused f16"].peak,
      }
      : {}),
    ...Object.fromEntries(
      Object.entries(peers).map((
        [device, ms],
      ) => [`step time, jax-js ${device} / fused`, ms / byMode.fused!.ms]),
    ),
  },
  notes: [
    `adapter: ${adapter.name} (${adapter.adapterClass})`,
    `T1 batch ${dims.batch}, seq 91`,
    ...peerNotes,
  ],
});
