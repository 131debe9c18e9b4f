/**
 * The runtime: opens a WebGPU device and interprets compiled plans on it (buffers, pipelines, the
 * optimizer step), plus the host-side pieces a training loop needs (parameter init, lr schedule).
 */
export {
  type AdapterReport,
  describeAdapter,
  DeviceError,
  type DeviceHandle,
  type DeviceRequirements,
  formatAdapterReport,
  openDevice,
} from "./device.ts";
export {
  Executor,
  type ExecutorOptions,
  type ExecutorStats,
  type HostArray,
  type RunOptions,
} from "./executor.ts";
export { INIT_STREAM, initParams } from "./init.ts";
export { learningRate, type LearningRateSchedule } from "./schedule.ts";
