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
export { CheckpointError, ImageError } from "./file_errors.ts";
export {
  checkAgainstParams,
  decodeSafetensors,
  encodeSafetensors,
  type SafeDType,
  type SafeTensor,
  type SafetensorsFile,
  type TensorData,
} from "./safetensors.ts";
export {
  captureCheckpoint,
  type Checkpoint,
  CHECKPOINT_FILES,
  type CheckpointParts,
  loadCheckpoint,
  restoreCheckpoint,
  type RunInfo,
  type RunState,
  saveCheckpoint,
  specHash,
  type TrainingState,
} from "./checkpoint.ts";
export { crc32, type DecodedImage, decodePng, encodeGrayPng, encodePng, type PngFilter } from "./png.ts";
export { type GridOptions, imageGrid, type LossCurveOptions, lossCurveSvg, type Series } from "./plots.ts";
export {
  ByteTokenizer,
  type ByteTokenizerConfig,
  FIRST_MERGE_ID,
  fitLength,
  SPECIAL,
  type Tokenizer,
  type TokenizerConfig,
  TokenizerError,
  tokenizerFromConfig,
} from "./tokenizer.ts";
export { type BpeConfig, type BpeSplit, BpeTokenizer, splitPieces } from "./bpe.ts";
export { type BpeTrainOptions, trainBpe } from "./bpe_train.ts";
export {
  fromTokenizerJson,
  type LoadedTokenizer,
  loadTokenizerJson,
  saveTokenizerJson,
  toTokenizerJson,
} from "./bpe_json.ts";
