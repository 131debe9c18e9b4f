/**
 * Where a cold start goes, per kernel: the dispatches of an entry of the shipped demo checkpoint
 * (examples/checkpoints/transfusion_demo), built as the executor builds them (one pipeline per
 * distinct WGSL text; creation timed for the entry as a whole), then each dispatched twice alone
 * and timed on the host: the first dispatch of a pipeline is where lavapipe JIT-compiles it, the
 * second is the steady cost. Run with an empty MESA_SHADER_CACHE_DIR, or Mesa's disk cache answers
 * for shaders compiled before. The kernels that cost most to start come first.
 * `--entry E` (default denoise_span), `--batch B` (default 80: 40 guided images), `--only NAME`
 * (kernels whose name contains NAME); `--quick` times the decode entry at batch 2.
 */
import { parseArgs } from "node:util";
import { loadRun } from "../../runtime/generate/run.ts";
import { compile } from "../../compiler/compile.ts";
import { describeAdapter, openDevice } from "../../runtime/device.ts";
import { report } from "../main.ts";
import { buildKernels, CountingDevice } from "../../runtime/_gpu_objects.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    entry: { type: "string" },
    batch: { type: "string" },
    only: { type: "string" },
    top: { type: "string", default: "15" },
  },
});
const entry = values.entry ?? (values.quick ? "decode" : "denoise_span");
const batch = Number(values.batch ?? (values.quick ? 2 : 80));
const run = await loadRun("examples/checkpoints/transfusion_demo/checkpoint");
const handle = await openDevice();
const plan = compile(run.model, {
  config: run.info.config as never,
  dims: { ...run.dims, batch, seq: run.config.seq },
  entries: [entry],
  adapterClass: describeAdapter(handle).adapterClass,
});
const { device } = handle;
const buffers = new Map(
  plan.buffers.map((
    b,
  ) => [b.name, device.createBuffer({ size: Math.max(4, b.bytes), usage: GPUBufferUsage.STORAGE })]),
);
const dispatches = plan.entries[entry]!.steps.flatMap((s) =>
  s.kind === "dispatch" ? [plan.kernels[s.kernel]!] : []
)
  .filter((k) => !values.only || k.name.includes(values.only));

async function timedDispatch(pipeline: GPUComputePipeline, group: GPUBindGroup, size: readonly number[]) {
  const start = performance.now();
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(size[0]!, size[1]!, size[2]!);
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - start;
}

type Row = { kernel: string; "WGSL kB": number; "first ms": number; "second ms": number };
// All of the entry's kernels built at once, as the executor builds them: kernels with one WGSL
// text (a model's layers, their offsets in a uniform) share a pipeline, so only the first of them
// pays the JIT at its first dispatch.
const gpu = new CountingDevice(device);
const c0 = performance.now();
const built = await buildKernels(gpu, dispatches, buffers);
const createMs = performance.now() - c0;
const rows: Row[] = [];
for (const k of built) {
  const firstMs = await timedDispatch(k.pipeline, k.bindGroup, k.kernel.dispatch);
  const secondMs = await timedDispatch(k.pipeline, k.bindGroup, k.kernel.dispatch);
  rows.push({
    kernel: k.kernel.name,
    "WGSL kB": k.kernel.wgsl.length / 1000,
    "first ms": firstMs,
    "second ms": secondMs,
  });
}
const total = (key: "first ms" | "second ms") => rows.reduce((a, r) => a + r[key], 0);
rows.sort((a, b) => b["first ms"] - a["first ms"]);
report({
  suite: "first_dispatch",
  rows: [
    {
      kernel: `all ${rows.length}`,
      "create ms (all)": createMs,
      pipelines: gpu.counts.pipelines,
      "first ms": total("first ms"),
      "second ms": total("second ms"),
    },
    ...rows.slice(0, Number(values.top)),
  ],
  ratios: { "first dispatch / second, summed": total("first ms") / total("second ms") },
  notes: [`${entry} of the shipped demo checkpoint at batch ${batch}; host-timed, one dispatch per submit`],
});
for (const b of [...buffers.values(), ...gpu.owned]) b.destroy();
