/**
 * Runs one kernel on plain host arrays, for kernel conformance tests and quick timings. Not a test
 * file itself: tests import it.
 *
 *   const out = await runKernel(kernel, { x, y: new Float32Array(n) }, ["y"]);
 *   new Float32Array(out.y!)
 */
import type { Kernel } from "../kernels/kernel.ts";
import { openDevice } from "../runtime/device.ts";

export type HostArray = Float32Array | Uint32Array | Int32Array;

/** Runs `kernel` once on copies of `buffers`; returns the named buffers' contents afterwards. */
export async function runKernel(
  kernel: Kernel,
  buffers: Readonly<Record<string, HostArray>>,
  read: readonly string[],
): Promise<Record<string, ArrayBuffer>> {
  for (const name of read) {
    if (!(name in buffers)) {
      throw new Error(`runKernel ${kernel.name}: asked to read "${name}", not a given buffer`);
    }
  }
  const run = await prepare(kernel, buffers);
  try {
    const { device } = run;
    device.pushErrorScope("validation");
    const encoder = device.createCommandEncoder({ label: kernel.name });
    encodeDispatch(encoder, run);
    const staging = read.map((name) => {
      const source = run.gpuBuffers.get(name)!;
      const copy = device.createBuffer({
        label: `${name} readback`,
        size: source.size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.copyBufferToBuffer(source, 0, copy, 0, source.size);
      return copy;
    });
    device.queue.submit([encoder.finish()]);
    await throwOnError(device, kernel);
    const out: Record<string, ArrayBuffer> = {};
    for (const [i, name] of read.entries()) {
      const copy = staging[i]!;
      await copy.mapAsync(GPUMapMode.READ);
      out[name] = copy.getMappedRange().slice(0, buffers[name]!.byteLength);
      copy.destroy();
    }
    return out;
  } finally {
    run.destroy();
  }
}

/** Median milliseconds per dispatch over `iters` runs, each submitted and awaited alone. */
export async function timeKernel(
  kernel: Kernel,
  buffers: Readonly<Record<string, HostArray>>,
  iters: number,
): Promise<number> {
  const run = await prepare(kernel, buffers);
  try {
    const { device } = run;
    const times: number[] = [];
    for (let i = -2; i < iters; i++) { // two warm-up runs, not counted
      const start = performance.now();
      const encoder = device.createCommandEncoder({ label: kernel.name });
      encodeDispatch(encoder, run);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      if (i >= 0) times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    return times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  } finally {
    run.destroy();
  }
}

interface PreparedRun {
  readonly device: GPUDevice;
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly gpuBuffers: ReadonlyMap<string, GPUBuffer>;
  destroy(): void;
}

/** Storage buffers filled from the host arrays, and the pipeline with a layout from `kernel.bindings`. */
async function prepare(kernel: Kernel, buffers: Readonly<Record<string, HostArray>>): Promise<PreparedRun> {
  const { device } = await openDevice();
  for (const b of kernel.bindings) {
    if (!(b.buffer in buffers)) {
      throw new Error(
        `kernel ${kernel.name} binds "${b.buffer}" at binding ${b.binding}, but no buffer of that name ` +
          `was given (given: ${Object.keys(buffers).join(", ") || "none"})`,
      );
    }
  }
  const most = device.limits.maxComputeWorkgroupsPerDimension;
  if (kernel.dispatch.some((n) => n > most || n < 0 || !Number.isInteger(n))) {
    throw new Error(
      `kernel ${kernel.name}: dispatch [${kernel.dispatch}] is not within 0..${most} per dimension`,
    );
  }

  const gpuBuffers = new Map<string, GPUBuffer>();
  const destroy = () => gpuBuffers.forEach((b) => b.destroy());
  device.pushErrorScope("validation");
  for (const [name, data] of Object.entries(buffers)) {
    const buffer = device.createBuffer({
      label: name,
      size: Math.max(4, Math.ceil(data.byteLength / 4) * 4), // a binding may not be empty
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    // A copy: the array may view a SharedArrayBuffer, which writeBuffer's type does not take.
    device.queue.writeBuffer(
      buffer,
      0,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
    );
    gpuBuffers.set(name, buffer);
  }
  const layout = device.createBindGroupLayout({
    label: kernel.name,
    entries: kernel.bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
    })),
  });
  const pipeline = device.createComputePipeline({
    label: kernel.name,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: {
      module: device.createShaderModule({ label: kernel.name, code: kernel.wgsl }),
      entryPoint: "main",
    },
  });
  const bindGroup = device.createBindGroup({
    label: kernel.name,
    layout,
    entries: kernel.bindings.map((b) => ({
      binding: b.binding,
      resource: { buffer: gpuBuffers.get(b.buffer)! },
    })),
  });
  try {
    await throwOnError(device, kernel);
  } catch (e) {
    destroy();
    throw e;
  }
  return { device, kernel, pipeline, bindGroup, gpuBuffers, destroy };
}

function encodeDispatch(encoder: GPUCommandEncoder, run: PreparedRun): void {
  const pass = encoder.beginComputePass({ label: run.kernel.name });
  pass.setPipeline(run.pipeline);
  pass.setBindGroup(0, run.bindGroup);
  pass.dispatchWorkgroups(...run.kernel.dispatch);
  pass.end();
}

/** Pops the validation scope pushed before; a WGSL or binding error becomes an exception naming the kernel. */
async function throwOnError(device: GPUDevice, kernel: Kernel): Promise<void> {
  const error = await device.popErrorScope();
  if (error) throw new Error(`kernel ${kernel.name}: ${error.message.trim()}`);
}
