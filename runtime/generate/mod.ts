/**
 * Generation with trained Transfusion runs: diffusion samplers (DDPM, DDIM, Euler, Heun) with
 * classifier-free guidance, greedy captioning, the interleaved text-and-image loop over a cached or
 * uncached model (with greedy / temperature / top-k / top-p text sampling), run loading, and the
 * MNIST digit evaluation.
 * The sampler cores take plain functions for the model call, so they run without a GPU.
 */
export {
  epsAndX0,
  flowVelocity,
  guide,
  type NoiseProcess,
  PREDICTION_TARGETS,
  type PredictionTarget,
  SamplingError,
  timestepSubsequence,
  usesGuidance,
} from "./prediction.ts";
export {
  type Denoiser,
  type DiffusionSampler,
  diffusionSampler,
  type SampleOptions,
  type SampleProgress,
  SAMPLER_METHODS,
  type SamplerMethod,
  type SamplerOptions,
} from "./sampler.ts";
export { gaussianNoise } from "./noise.ts";
export { greedyDecode, type GreedyOptions, type NextTokenScores } from "./greedy.ts";
export {
  checkTextSampling,
  greedyToken,
  isGreedy,
  sampleToken,
  type TextSampling,
  textUniform,
  type TokenDistribution,
  tokenDistribution,
} from "./text_sampling.ts";
export { assembleRows, type Row, type RowGeometry, rowGeometry, type RowImage, rowPrefix } from "./rows.ts";
export { type EntryRunner, type SequenceModel, uncachedModel } from "./sequence_model.ts";
export { CACHED_ENTRIES, cachedModel, hasCachedEntries } from "./cached_model.ts";
export {
  drawImages,
  type FinishReason,
  generate,
  type GeneratedRow,
  type GenerationRequest,
  type GrowingRow,
  IMAGE_STRIDE,
  type ImageSampling,
} from "./interleaved.ts";
export {
  captionPrompt,
  checkCaptionFits,
  imagePrompt,
  type Prompt,
  type PromptPart,
  promptRow,
} from "./prompts.ts";
export {
  DIGIT_SIDE,
  digitFromModelImage,
  digitFromPng,
  digitPlacement,
  fitSquare,
  type PreparedDigit,
} from "./images.ts";
export { frameFromPicture, type FrameGrid, frameGrid, frameGridPng } from "./frames.ts";
export { DATA_RECORD, runImageView } from "./image_view.ts";
export {
  type LoadedRun,
  loadRun,
  type ModelRun,
  type ModelSession,
  openSequenceModel,
  trainingSession,
  warnIfSpecChanged,
  WEIGHTS,
  type Weights,
} from "./run.ts";
export {
  captionImages,
  defaultMethod,
  generateImages,
  type GenerateOptions,
  heldOutLosses,
  modelDenoiser,
  noiseProcess,
} from "./transfusion.ts";
export { asUsageErrors, intFlag, numberFlag, parseFlags, samplerFlag, weightsFlag } from "./flags.ts";
export { type FollowedSpan, type FollowRequest, followRows, type RowStep, templateSteps } from "./follow.ts";
export {
  generateText,
  isTextModel,
  type TextFrame,
  textFrame,
  type TextRequest,
  type TextRow,
  textStepInputs,
} from "./text_model.ts";
export { matchRow, parseRowSpec, type RowPart } from "./row_prompt.ts";
