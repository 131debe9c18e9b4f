/**
 * Where a cold start goes, per kernel: for each dispatch of an entry of the shipped demo checkpoint
 * (examples/checkpoints/transfusion_demo), the time to create its shader module and pipeline, its
 * first dispatch alone (lavapipe JIT-compiles the pipeline there) and its second (the steady cost),
 * each submitted alone and timed on the host. Run with an empty MESA_SHADER_CACHE_DIR, or Mesa's
 * disk cache answers for shaders compiled before. The kernels that cost most to start come first.
 * `--entry E` (default denoise_span), `--batch B` (default 80: 40 guided images), `--only NAME`
 * (kernels whose name contains NAME); `--quick` times the decode entry at batch 2.
 */
import { parseArgs } from "node:util";
import { loadRun } from "../../runtime/generate/run.ts";
import { compile } from "../../compiler/compile.ts";
import { describeAdapter, openDevice } from "../../runtime/device.ts";
import { report } from "../main.ts";

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

type Row = {
  kernel: string;
  "WGSL kB": number;
  "create ms": number;
  "first ms": number;
  "second ms": number;
};
const rows: Row[] = [];
for (const k of dispatches) {
  const layout = device.createBindGroupLayout({
    entries: k.bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.access === "read" ? "read-only-storage" as const : "storage" as const },
    })),
  });
  const t0 = performance.now();
  const module = device.createShaderModule({ code: k.wgsl });
  const pipeline = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module },
  });
  const createMs = performance.now() - t0;
  const group = device.createBindGroup({
    layout,
    entries: k.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers.get(b.buffer)! } })),
  });
  const firstMs = await timedDispatch(pipeline, group, k.dispatch);
  const secondMs = await timedDispatch(pipeline, group, k.dispatch);
  rows.push({
    kernel: k.name,
    "WGSL kB": k.wgsl.length / 1000,
    "create ms": createMs,
    "first ms": firstMs,
    "second ms": secondMs,
  });
}
const total = (key: "create ms" | "first ms" | "second ms") => rows.reduce((a, r) => a + r[key], 0);
rows.sort((a, b) => b["first ms"] - a["first ms"]);
report({
  suite: "first_dispatch",
  rows: [
    {
      kernel: `all ${rows.length}`,
      "create ms": total("create ms"),
      "first ms": total("first ms"),
      "second ms": total("second ms"),
    },
    ...rows.slice(0, Number(values.top)),
  ],
  ratios: { "first dispatch / second, summed": total("first ms") / total("second ms") },
  notes: [`${entry} of the shipped demo checkpoint at batch ${batch}; host-timed, one dispatch per submit`],
});
for (const b of buffers.values()) b.destroy();
