/**
 * Generation with trained Transfusion runs: diffusion samplers (DDPM, DDIM, Euler, Heun) with
 * classifier-free guidance, greedy captioning, run loading, and the MNIST digit evaluation.
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
  DIGIT_SIDE,
  digitFromModelImage,
  digitFromPng,
  digitPlacement,
  fitSquare,
  type PreparedDigit,
} from "./images.ts";
export {
  type LoadedRun,
  loadRun,
  type ModelRun,
  type ModelSession,
  trainingSession,
  warnIfSpecChanged,
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
export { type ClassifierOptions, type DigitClassifier, digitClassifier } from "./classifier.ts";
export {
  balancedIndices,
  type DigitEval,
  type DigitEvalOptions,
  type DigitEvalOutput,
  evaluateDigits,
  formatDigitEval,
  mentionedDigit,
  msPerStep,
} from "./digit_eval.ts";
export { asUsageErrors, intFlag, numberFlag, parseFlags, samplerFlag } from "./flags.ts";
