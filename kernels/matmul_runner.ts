import type { Kernel } from "./kernel.ts";

/**
 * Just enough of a runtime to run one kernel on its own buffers: autotuning measures candidates with
 * it, and the matmul benchmark times kernels with it.
 */
export interface PreparedKernel {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
}

/** Zero-filled storage buffers of the given byte sizes: speed does not depend on the values. */
export function createBuffers(
  device: GPUDevice,
  bufferBytes: Readonly<Record<string, number>>,
): Map<string, GPUBuffer> {
  const buffers = new Map<string, GPUBuffer>();
  for (const [name, bytes] of Object.entries(bufferBytes)) {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = device.createBuffer({ label: name, size: Math.max(4, bytes), usage });
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
  encodeRuns(encoder.beginComputePass(), prepared, times);
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
}

/**
 * Seconds per run: median over `samples` timed batches after a warm-up run (which may compile).
 * Each batch runs the kernel often enough to take ~0.1 s. Batches are timed by GPU timestamps where
 * the device has them, else by the wall clock less the fixed cost of a submit and wait (~12 ms under
 * Deno, whatever the work). When one run takes longer than `giveUpAfter` seconds, its time is
 * returned at once.
 */
export async function secondsPerRun(
  device: GPUDevice,
  prepared: PreparedKernel,
  samples = 3,
  giveUpAfter = Infinity,
): Promise<number> {
  const timer = device.features.has("timestamp-query") ? timestampTimer(device) : await wallTimer(device);
  try {
    await timer.time(prepared, 1);
    const once = await timer.time(prepared, 1);
    if (once > giveUpAfter) return once;
    const times = Math.max(1, Math.min(4096, Math.round(0.1 / once)));
    const seconds: number[] = [];
    for (let s = 0; s < samples; s++) seconds.push((await timer.time(prepared, times)) / times);
    seconds.sort((a, b) => a - b);
    return seconds[Math.floor(seconds.length / 2)]!;
  } finally {
    timer.destroy();
  }
}

interface BatchTimer {
  /** Seconds that `times` back-to-back runs take. */
  time(prepared: PreparedKernel, times: number): Promise<number>;
  destroy(): void;
}

function timestampTimer(device: GPUDevice): BatchTimer {
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 });
  const resolved = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const readback = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  return {
    async time(prepared, times) {
      const encoder = device.createCommandEncoder();
      const timestampWrites = { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 };
      encodeRuns(encoder.beginComputePass({ timestampWrites }), prepared, times);
      encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readback, 0, 16);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const [start, end] = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return Math.max(Number(end! - start!), 1) / 1e9;
    },
    destroy() {
      querySet.destroy();
      resolved.destroy();
      readback.destroy();
    },
  };
}

async function wallTimer(device: GPUDevice): Promise<BatchTimer> {
  let overhead = Infinity;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone();
    overhead = Math.min(overhead, (performance.now() - start) / 1000);
  }
  return {
    async time(prepared, times) {
      const start = performance.now();
      await dispatch(device, prepared, times);
      return Math.max((performance.now() - start) / 1000 - overhead, 1e-9);
    },
    destroy() {},
  };
}

function encodeRuns(pass: GPUComputePassEncoder, prepared: PreparedKernel, times: number): void {
  pass.setPipeline(prepared.pipeline);
  pass.setBindGroup(0, prepared.bindGroup);
  const [x, y, z] = prepared.kernel.dispatch;
  for (let i = 0; i < times; i++) pass.dispatchWorkgroups(x, y, z);
  pass.end();
}
