/**
 * T1 (../shared/benchmarks/T1.md) training step: the fused plan against the first (unfused)
 * lowering of the same spec, on the same adapter in the same process: median step ms, dispatches
 * per step, peak activation memory. The jax-js peer runs in bench/peers when available.
 */
import { parseArgs } from "node:util";
import t1 from "../../examples/t1.ts";
import { compile } from "../../compiler/mod.ts";
import { describeAdapter, Executor, openDevice } from "../../runtime/mod.ts";
import { summarize } from "../../cli/explain.ts";
import { resolveConfig } from "../../spec/mod.ts";
import { medianMs, report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });
const handle = await openDevice();
const adapter = describeAdapter(handle);
const runs = values.quick ? 3 : 7;
const config = resolveConfig(t1.config as never, {}, "t1");
const dims = { ...t1.dims };
const data = t1.data!(config as never, dims);

const rows: SuiteResult["rows"] = [];
const byMode: Record<string, { ms: number; dispatches: number; peak: number }> = {};
for (const fuse of [true, false]) {
  const mode = fuse ? "fused" : "unfused";
  const t0 = performance.now();
  const plan = compile(t1, {
    fuse,
    adapterClass: adapter.adapterClass,
    adapterKey: adapter.cacheKey,
    entries: ["trainStep"],
  });
  const compileMs = performance.now() - t0;
  const ex = await Executor.create(plan, { seed: 1, handle });
  let step = 0;
  const t1Start = performance.now();
  await ex.run("trainStep", data.batch(step++, 1), { lr: 3e-4 }); // first run builds every pipeline
  const firstMs = performance.now() - t1Start;
  const ms = await medianMs(() => ex.run("trainStep", data.batch(step++, 1), { lr: 3e-4 }), runs, 1);
  const s = summarize(plan);
  byMode[mode] = { ms, dispatches: s.dispatches_per_step, peak: s.peak_bytes };
  rows.push({
    plan: mode,
    "step ms (median)": ms,
    "GFLOP/s": s.flops_per_step / ms / 1e6,
    dispatches: s.dispatches_per_step,
    "peak MB": s.peak_bytes / 1e6,
    kernels: s.kernels,
    "compile ms": compileMs,
    "first step ms": firstMs,
  });
  ex.destroy();
}
report({
  suite: "t1",
  rows,
  ratios: {
    "step time, unfused / fused": byMode.unfused!.ms / byMode.fused!.ms,
    "dispatches, unfused / fused": byMode.unfused!.dispatches / byMode.fused!.dispatches,
    "peak memory, unfused / fused": byMode.unfused!.peak / byMode.fused!.peak,
  },
  notes: [`adapter: ${adapter.name} (${adapter.adapterClass})`, `T1 batch ${dims.batch}, seq 91`],
});
