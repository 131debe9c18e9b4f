/** Creation of the executor's GPU objects, counted so tests can check that `run` creates none. */
import type { Kernel, KernelBinding } from "../kernels/kernel.ts";

/** GPU objects created so far; `run` creates none of these, so the counts stay put across steps. */
export interface ExecutorStats {
  buffers: number;
  shaderModules: number;
  bindGroupLayouts: number;
  pipelineLayouts: number;
  pipelines: number;
  bindGroups: number;
}

export interface BuiltKernel {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
}

/**
 * One bind group per kernel, the whole buffers bound, and one pipeline per distinct WGSL text:
 * lowered kernels read their arena offsets from a uniform (compiler/lower/arena_offsets.ts), so a
 * model's layers are one text and one pipeline, each kernel binding its own slice of one offsets
 * buffer. Kernels with the same binding signature share a layout. Each kernel is built in its own
 * error scope so a WGSL error names it.
 */
export async function buildKernels(
  gpu: CountingDevice,
  kernels: readonly Kernel[],
  buffers: ReadonlyMap<string, GPUBuffer>,
): Promise<BuiltKernel[]> {
  const layouts = new Map<string, { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout }>();
  const pipelines = new Map<string, GPUComputePipeline>();
  const slices = offsetSlices(gpu, kernels);
  const built: BuiltKernel[] = [];
  for (const [i, kernel] of kernels.entries()) {
    gpu.device.pushErrorScope("validation");
    const slice = slices.get(i);
    // The offsets' size is part of the layout: with one layout for two sizes, wgpu (Deno 2.9)
    // checked a dispatch's offsets against the previous pipeline's size.
    const key = kernel.bindings.map((b) => `${b.binding}:${b.access}`).join(",") +
      (slice ? `,offsets:${slice.size}` : "");
    let layout = layouts.get(key);
    if (!layout) {
      const group = gpu.bindGroupLayout(kernel.bindings, slice?.size);
      layout = { group, pipeline: gpu.pipelineLayout(group) };
      layouts.set(key, layout);
    }
    const shared = `${key}\n${kernel.wgsl}`;
    let pipeline = pipelines.get(shared);
    if (!pipeline) {
      pipeline = gpu.pipeline(kernel.name, layout.pipeline, gpu.shaderModule(kernel.name, kernel.wgsl));
      pipelines.set(shared, pipeline);
    }
    const entries: GPUBindGroupEntry[] = kernel.bindings.map((b) => ({
      binding: b.binding,
      resource: { buffer: buffers.get(b.buffer)! },
    }));
    if (slice) entries.push({ binding: kernel.bindings.length, resource: slice });
    const bindGroup = gpu.bindGroup(kernel.name, layout.group, entries);
    const error = await gpu.device.popErrorScope();
    if (error) throw new Error(`kernel ${i} "${kernel.name}" failed to build: ${error.message}`);
    built.push({ kernel, pipeline, bindGroup });
  }
  return built;
}

/**
 * Every kernel's arena offsets in one uniform buffer, each kernel's vec4s at an offset the
 * device's uniform alignment allows (256 bytes on most adapters): the slice its bind group binds.
 */
function offsetSlices(gpu: CountingDevice, kernels: readonly Kernel[]): Map<number, GPUBufferBinding> {
  const align = gpu.device.limits.minUniformBufferOffsetAlignment;
  const placed: { kernel: number; offset: number; size: number }[] = [];
  let end = 0;
  kernels.forEach((k, kernel) => {
    if (!k.offsets?.length) return;
    const size = 16 * Math.ceil(k.offsets.length / 4);
    const offset = Math.ceil(end / align) * align;
    placed.push({ kernel, offset, size });
    end = offset + size;
  });
  const slices = new Map<number, GPUBufferBinding>();
  if (placed.length === 0) return slices;
  const buffer = gpu.buffer("arena_offsets", end, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  gpu.owned.push(buffer);
  const words = new Uint32Array(end / 4);
  for (const p of placed) {
    words.set(kernels[p.kernel]!.offsets!, p.offset / 4);
    slices.set(p.kernel, { buffer, offset: p.offset, size: p.size });
  }
  gpu.device.queue.writeBuffer(buffer, 0, words);
  return slices;
}

/** Creates GPU objects and counts them, so tests can check that `run` creates none. */
export class CountingDevice {
  readonly counts: ExecutorStats = {
    buffers: 0,
    shaderModules: 0,
    bindGroupLayouts: 0,
    pipelineLayouts: 0,
    pipelines: 0,
    bindGroups: 0,
  };

  /** Buffers made here that no plan names (the kernels' offsets), for the owner to destroy. */
  readonly owned: GPUBuffer[] = [];

  constructor(readonly device: GPUDevice) {}

  buffer(label: string, size: number, usage: number): GPUBuffer {
    this.counts.buffers++;
    return this.device.createBuffer({ label, size, usage });
  }

  shaderModule(label: string, code: string): GPUShaderModule {
    this.counts.shaderModules++;
    return this.device.createShaderModule({ label, code });
  }

  /** Storage bindings as the kernel lists them, and `offsetBytes` of uniform right after them. */
  bindGroupLayout(bindings: readonly KernelBinding[], offsetBytes?: number): GPUBindGroupLayout {
    this.counts.bindGroupLayouts++;
    const entries: GPUBindGroupLayoutEntry[] = bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
    }));
    if (offsetBytes) {
      entries.push({
        binding: bindings.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", minBindingSize: offsetBytes },
      });
    }
    return this.device.createBindGroupLayout({ entries });
  }

  pipelineLayout(group: GPUBindGroupLayout): GPUPipelineLayout {
    this.counts.pipelineLayouts++;
    return this.device.createPipelineLayout({ bindGroupLayouts: [group] });
  }

  pipeline(label: string, layout: GPUPipelineLayout, module: GPUShaderModule): GPUComputePipeline {
    this.counts.pipelines++;
    return this.device.createComputePipeline({ label, layout, compute: { module } });
  }

  bindGroup(label: string, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[]): GPUBindGroup {
    this.counts.bindGroups++;
    return this.device.createBindGroup({ label, layout, entries });
  }
}
