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
 * One pipeline and bind group per kernel, the whole buffers bound; kernels with the same binding
 * signature share a layout. Each kernel is built in its own error scope so a WGSL error names it.
 */
export async function buildKernels(
  gpu: CountingDevice,
  kernels: readonly Kernel[],
  buffers: ReadonlyMap<string, GPUBuffer>,
): Promise<BuiltKernel[]> {
  const layouts = new Map<string, { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout }>();
  const built: BuiltKernel[] = [];
  for (const [i, kernel] of kernels.entries()) {
    gpu.device.pushErrorScope("validation");
    const key = kernel.bindings.map((b) => `${b.binding}:${b.access}`).join(",");
    let layout = layouts.get(key);
    if (!layout) {
      const group = gpu.bindGroupLayout(kernel.bindings);
      layout = { group, pipeline: gpu.pipelineLayout(group) };
      layouts.set(key, layout);
    }
    const module = gpu.shaderModule(kernel.name, kernel.wgsl);
    const pipeline = gpu.pipeline(kernel.name, layout.pipeline, module);
    const bindGroup = gpu.bindGroup(
      kernel.name,
      layout.group,
      kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers.get(b.buffer)! } })),
    );
    const error = await gpu.device.popErrorScope();
    if (error) throw new Error(`kernel ${i} "${kernel.name}" failed to build: ${error.message}`);
    built.push({ kernel, pipeline, bindGroup });
  }
  return built;
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

  constructor(readonly device: GPUDevice) {}

  buffer(label: string, size: number, usage: number): GPUBuffer {
    this.counts.buffers++;
    return this.device.createBuffer({ label, size, usage });
  }

  shaderModule(label: string, code: string): GPUShaderModule {
    this.counts.shaderModules++;
    return this.device.createShaderModule({ label, code });
  }

  bindGroupLayout(bindings: readonly KernelBinding[]): GPUBindGroupLayout {
    this.counts.bindGroupLayouts++;
    return this.device.createBindGroupLayout({
      entries: bindings.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
      })),
    });
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
