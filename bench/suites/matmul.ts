/**
 * Matmul on the present adapter: ours (the tuned variant when `deno task tune` cached one, else the
 * adapter class's default) against tfjs-webgpu and jax-js (webgpu and wasm), each run measured the
 * same way: one matmul plus reading the result back, median of several runs after warmup. Our
 * kernel-only time (GPU timestamps) is reported too. Ratios are ours / peer in GFLOP/s.
 */
import { parseArgs } from "node:util";
import { defaultVariant, matmulKernel, type MatmulShape, variantName } from "../../kernels/matmul.ts";
import { cachedVariant } from "../../kernels/autotune.ts";
import { plainMatmulIO } from "../../kernels/matmul_io.ts";
import { createBuffers, prepareKernel, secondsPerRun } from "../../kernels/matmul_runner.ts";
import { describeAdapter, openDevice } from "../../runtime/mod.ts";
import { jaxMatmulGflops, PEER_MATMUL_SHAPES, tfjsMatmulGflops } from "../peers/mod.ts";
import { medianMs, report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });
const handle = await openDevice();
const { device } = handle;
const adapter = describeAdapter(handle);
const runs = values.quick ? 3 : 5;
const shapes = values.quick
  ? PEER_MATMUL_SHAPES.filter((s) => !s.name.startsWith("T1 patch"))
  : PEER_MATMUL_SHAPES;

/** Ours, wall clock with a readback of C, like the peers' protocol. */
async function oursGflops(shape: MatmulShape): Promise<{ wall: number; kernel: number; variant: string }> {
  const variant = cachedVariant(adapter.cacheKey, shape) ?? defaultVariant(adapter.adapterClass, shape);
  const io = plainMatmulIO(shape, { vector: variant.kind === "vector" });
  const buffers = createBuffers(device, io.bufferBytes);
  const prepared = await prepareKernel(device, matmulKernel("bench", shape, io, variant), buffers);
  const flops = 2 * shape.batch * shape.m * shape.n * shape.k;
  const kernel = flops / (await secondsPerRun(device, prepared, runs)) / 1e9;
  const cBytes = 4 * shape.batch * shape.m * shape.n;
  const readback = device.createBuffer({
    size: cBytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const c = buffers.get("mat_c")!;
  const ms = await medianMs(
    async () => {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(prepared.pipeline);
      pass.setBindGroup(0, prepared.bindGroup);
      pass.dispatchWorkgroups(...prepared.kernel.dispatch);
      pass.end();
      encoder.copyBufferToBuffer(c, 0, readback, 0, cBytes);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      readback.unmap();
    },
    runs,
    2,
  );
  readback.destroy();
  return { wall: flops / ms / 1e6, kernel, variant: variantName(variant) };
}

const rows: SuiteResult["rows"] = [];
const ratios: Record<string, number> = {};
for (const { name, shape } of shapes) {
  const s: MatmulShape = { batch: shape.batch ?? 1, m: shape.m, n: shape.n, k: shape.k };
  const ours = await oursGflops(s);
  const tfjs = await tfjsMatmulGflops(shape, { runs });
  const jaxGpu = await jaxMatmulGflops(shape, "webgpu", { runs });
  const jaxWasm = await jaxMatmulGflops(shape, "wasm", { runs });
  rows.push({
    shape: name,
    "ours GFLOP/s": ours.wall,
    "ours kernel-only": ours.kernel,
    "tfjs-webgpu": tfjs,
    "jax-js webgpu": jaxGpu,
    "jax-js wasm": jaxWasm,
    variant: ours.variant,
  });
  ratios[`${name}: ours / tfjs-webgpu`] = ours.wall / tfjs;
  ratios[`${name}: ours / jax-js webgpu`] = ours.wall / jaxGpu;
}
report({
  suite: "matmul",
  rows,
  ratios,
  notes: [`adapter: ${adapter.name} (${adapter.adapterClass}); every figure includes reading C back`],
});
