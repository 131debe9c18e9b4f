import type { Kernel } from "./kernel.ts";

/**
 * Just enough of a runtime to run one kernel on its own buffers: autotuning measures candidates with
 * it, and the matmul test and benchmark use it to run kernels against plain buffers.
 */
export interface PreparedKernel {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
}

/** Storage buffers of the given byte sizes, filled from `init` where given (f32 data). */
export function createBuffers(
  device: GPUDevice,
  bufferBytes: Readonly<Record<string, number>>,
  init: Readonly<Record<string, Float32Array<ArrayBuffer>>> = {},
): Map<string, GPUBuffer> {
  const buffers = new Map<string, GPUBuffer>();
  for (const [name, bytes] of Object.entries(bufferBytes)) {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = device.createBuffer({ label: name, size: Math.max(4, bytes), usage });
    const data = init[name];
    if (data) device.queue.writeBuffer(buffer, 0, data);
    buffers.set(name, buffer);
  }
  return buffers;
}

export async function prepareKernel(
  device: GPUDevice,
  kernel: Kernel,
  buffers: ReadonlyMap<string, GPUBuffer>,
): Promise<PreparedKernel> {
  const module = device.createShaderModule({ label: kernel.name, code: kernel.wgsl });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((msg) => msg.type === "error");
  if (errors.length > 0) {
    const lines = errors.map((msg) => `  line ${msg.lineNum}: ${msg.message}`).join("\n");
    throw new Error(`kernel ${kernel.name} does not compile:\n${lines}\n${kernel.wgsl}`);
  }
  device.pushErrorScope("validation");
  // An explicit layout, so a binding the WGSL happens not to use still binds.
  const layout = device.createBindGroupLayout({
    label: kernel.name,
    entries: kernel.bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
    })),
  });
  const pipeline = await device.createComputePipelineAsync({
    label: kernel.name,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  const entries = kernel.bindings.map((b) => {
    const buffer = buffers.get(b.buffer);
    if (!buffer) throw new Error(`kernel ${kernel.name} binds buffer "${b.buffer}", which was not created`);
    return { binding: b.binding, resource: { buffer } };
  });
  const bindGroup = device.createBindGroup({ layout, entries });
  const error = await device.popErrorScope();
  if (error) throw new Error(`kernel ${kernel.name}: ${error.message}`);
  return { kernel, pipeline, bindGroup };
}

/** Runs `prepared` `times` times in one compute pass and waits for the queue to finish. */
export async function dispatch(device: GPUDevice, prepared: PreparedKernel, times = 1): Promise<void> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(prepared.pipeline);
  pass.setBindGroup(0, prepared.bindGroup);
  const [x, y, z] = prepared.kernel.dispatch;
  for (let i = 0; i < times; i++) pass.dispatchWorkgroups(x, y, z);
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
}

/**
 * Seconds per run: median over `samples` timed batches after a warm-up run (which may compile).
 * When one run takes longer than `giveUpAfter` seconds, that run's time is returned at once.
 */
export async function secondsPerRun(
  device: GPUDevice,
  prepared: PreparedKernel,
  samples = 3,
  giveUpAfter = Infinity,
): Promise<number> {
  await dispatch(device, prepared);
  let start = performance.now();
  await dispatch(device, prepared);
  const once = (performance.now() - start) / 1000;
  if (once > giveUpAfter) return once;
  // Batch enough runs that each sample takes ~30 ms, so submit overhead stays small.
  const times = Math.max(1, Math.min(64, Math.round(0.03 / Math.max(once, 1e-5))));
  const seconds: number[] = [];
  for (let s = 0; s < samples; s++) {
    start = performance.now();
    await dispatch(device, prepared, times);
    seconds.push((performance.now() - start) / 1000 / times);
  }
  seconds.sort((a, b) => a - b);
  return seconds[Math.floor(seconds.length / 2)]!;
}

export async function readBuffer(device: GPUDevice, buffer: GPUBuffer): Promise<Float32Array> {
  const staging = device.createBuffer({
    size: buffer.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const data = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return data;
}
