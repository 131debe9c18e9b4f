/**
 * The device layer: finds a WebGPU adapter (Vulkan preferred on Linux) and opens a device with
 * the limits and features the work needs.
 */
export interface DeviceHandle {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
}

let shared: Promise<DeviceHandle> | undefined;

/** One device per process, opened on first use. */
export function openDevice(): Promise<DeviceHandle> {
  shared ??= requestDevice();
  return shared;
}

async function requestDevice(): Promise<DeviceHandle> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter found");
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    },
    requiredFeatures: adapter.features.has("shader-f16") ? ["shader-f16"] : [],
  });
  return { adapter, device };
}
