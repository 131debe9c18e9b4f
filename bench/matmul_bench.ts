/**
 * Matmul speed on the present adapter: 512^3 and 1024^3 with the default variant, printed as
 * GFLOP/s. `MATMUL_BENCH_ALL=1` benches every candidate variant instead (for tuning the defaults).
 *
 *   DENO_WEBGPU_BACKEND=vulkan deno bench -A bench/matmul_bench.ts
 */
import { candidateVariants, defaultVariant, matmulKernel, variantName } from "../kernels/matmul.ts";
import { plainMatmulIO } from "../kernels/matmul_io.ts";
import { createBuffers, dispatch, prepareKernel, secondsPerRun } from "../kernels/matmul_runner.ts";
import { classifyAdapter, openDevice } from "../runtime/device.ts";

const { adapter, device } = await openDevice();
const adapterClass = classifyAdapter(adapter.info);
const everyVariant = Deno.env.get("MATMUL_BENCH_ALL") === "1";

for (const size of [512, 1024]) {
  const shape = { batch: 1, m: size, n: size, k: size };
  const io = plainMatmulIO(shape);
  const buffers = createBuffers(device, io.bufferBytes);
  const variants = everyVariant
    ? candidateVariants(adapterClass, shape)
    : [defaultVariant(adapterClass, shape)];
  for (const variant of variants) {
    const prepared = await prepareKernel(device, matmulKernel(`bench_${size}`, shape, io, variant), buffers);
    const gflops = prepared.kernel.flops / (await secondsPerRun(device, prepared, 5)) / 1e9;
    const name = `matmul ${size}^3 ${variantName(variant)} (${adapterClass}): ${gflops.toFixed(1)} GFLOP/s`;
    console.log(name);
    Deno.bench({ name, group: `${size}^3`, n: 5, warmup: 1 }, () => dispatch(device, prepared));
  }
}
