/**
 * Diffusion samplers over an abstract model call, so they run (and are tested) without a GPU:
 *   ddpm   ancestral sampling with the posterior variance (the paper's sampler; fewer steps than T
 *          respace the schedule over a timestep subsequence)
 *   ddim   deterministic DDIM (eta = 0) over a subsequence of any length
 *   euler, heun   ODE steps from t = 1 to t = 0 for flow-matching models (Heun: 2 calls per step,
 *          1 on the last)
 * With classifier-free guidance every step is ONE model call over 2K rows: rows 0..K-1 conditional,
 * rows K..2K-1 the same images with the condition dropped.
 */
import { gaussianNoise } from "./noise.ts";
import {
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

/**
 * One model evaluation: x_t [rows, perRow] at timestep t (the same for every image; DDPM: an integer
 * in [0, T), flow: in [0, 1]) -> the prediction in the model's target space, [rows, perRow].
 */
export type Denoiser = (xt: Float32Array, t: number, rows: number) => Promise<Float32Array>;

export type SamplerMethod = "ddpm" | "ddim" | "euler" | "heun";
export const SAMPLER_METHODS: readonly SamplerMethod[] = ["ddpm", "ddim", "euler", "heun"];
const METHODS_FOR: { readonly [K in NoiseProcess["kind"]]: readonly SamplerMethod[] } = {
  ddpm: ["ddpm", "ddim"],
  flow: ["euler", "heun"],
};

export interface SamplerOptions {
  readonly process: NoiseProcess;
  readonly target: PredictionTarget;
  readonly method: SamplerMethod;
  readonly steps: number;
  /** Guidance weight w: uncond + w (cond - uncond); 0 and 1 mean no guidance (K rows per call). */
  readonly cfg: number;
  readonly seed: number;
  /** Clip x0 estimates to [-1, 1] in DDPM/DDIM steps (the images' range). Default true. */
  readonly clip?: boolean;
}

export interface SampleProgress {
  /** Steps done (1-based) out of `of`. */
  readonly step: number;
  readonly of: number;
  readonly t: number;
}

export interface DiffusionSampler {
  readonly options: SamplerOptions;
  /** Rows of each model call when sampling `count` images. */
  rows(count: number): number;
  /** Model calls per sample. */
  readonly calls: number;
  /** `count` images of `perRow` values each, [count, perRow], in the model's image range. */
  sample(denoiser: Denoiser, count: number, perRow: number, opts?: SampleOptions): Promise<Float32Array>;
}

export interface SampleOptions {
  readonly onStep?: (p: SampleProgress) => void;
  /**
   * Image k draws its noise from block `firstRow + k` of the seed's streams, so a chunk of a larger
   * request gets the images the whole request would. Default 0.
   */
  readonly firstRow?: number;
}

/** Validates the options (method vs. process, steps, weight) and returns the sampler. */
export function diffusionSampler(options: SamplerOptions): DiffusionSampler {
  const { process, method, steps, cfg, target } = options;
  if (!PREDICTION_TARGETS.includes(target)) {
    throw new SamplingError(
      `prediction target must be one of ${PREDICTION_TARGETS.join(", ")}, got ${target}`,
    );
  }
  const allowed = METHODS_FOR[process.kind];
  if (!allowed.includes(method)) {
    throw new SamplingError(
      `sampler "${method}" does not fit a ${process.kind} model; use ${allowed.join(" or ")}`,
    );
  }
  if (!Number.isFinite(cfg) || cfg < 0) throw new SamplingError(`guidance weight must be >= 0, got ${cfg}`);
  if (!Number.isInteger(options.seed) || options.seed < 0) {
    throw new SamplingError(`seed must be a non-negative integer, got ${options.seed}`);
  }
  const times = process.kind === "ddpm"
    ? timestepSubsequence(process.alphaBar.length, steps)
    : flowTimes(steps);
  const calls = process.kind === "flow" && method === "heun" ? 2 * steps - 1 : steps;
  return {
    options,
    calls,
    rows: (count) => (usesGuidance(cfg) ? 2 * count : count),
    sample: async (denoiser, count, perRow, opts = {}) => {
      if (!Number.isInteger(count) || count < 1) throw new SamplingError(`count must be >= 1, got ${count}`);
      const predict = guidedPrediction(denoiser, count, cfg);
      const noise = (stream: number) =>
        gaussianNoise(options.seed, stream, count * perRow, (opts.firstRow ?? 0) * perRow);
      const x = noise(0);
      if (process.kind === "ddpm") {
        return await denoiseDdpm(process.alphaBar, times, x, predict, noise, options, opts.onStep);
      }
      return await integrateFlow(times, x, predict, options, opts.onStep);
    },
  };
}

/** `steps` + 1 times from 1 down to 0. */
function flowTimes(steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new SamplingError(`sampling steps must be a positive integer, got ${steps}`);
  }
  return Array.from({ length: steps + 1 }, (_, i) => 1 - i / steps);
}

type Predict = (x: Float32Array, t: number) => Promise<Float32Array>;

/** The (guided) prediction for `count` rows: one denoiser call of 2 * count rows under guidance. */
function guidedPrediction(denoiser: Denoiser, count: number, cfg: number): Predict {
  const check = (out: Float32Array, want: number, rows: number) => {
    if (out.length !== want) {
      throw new Error(`the denoiser returned ${out.length} values for ${rows} rows, expected ${want}`);
    }
    return out;
  };
  if (!usesGuidance(cfg)) return async (x, t) => check(await denoiser(x, t, count), x.length, count);
  return async (x, t) => {
    const both = new Float32Array(2 * x.length);
    both.set(x);
    both.set(x, x.length);
    const out = check(await denoiser(both, t, 2 * count), both.length, 2 * count);
    return guide(out.subarray(0, x.length), out.subarray(x.length), cfg);
  };
}

async function denoiseDdpm(
  alphaBar: Float64Array,
  times: readonly number[],
  x: Float32Array,
  predict: Predict,
  noise: (stream: number) => Float32Array,
  options: SamplerOptions,
  onStep: ((p: SampleProgress) => void) | undefined,
): Promise<Float32Array> {
  const clip = options.clip ?? true;
  for (const [i, t] of times.entries()) {
    const ab = alphaBar[t]!;
    const abPrev = i + 1 < times.length ? alphaBar[times[i + 1]!]! : 1;
    let { eps, x0 } = epsAndX0(options.target, await predict(x, t), x, ab);
    if (clip) {
      x0 = x0.map((v) => Math.min(1, Math.max(-1, v)));
      // eps consistent with the clipped x0, so the step stays on the line through x_t and x0.
      eps = x.map((v, j) => (v - Math.sqrt(ab) * x0[j]!) / Math.sqrt(1 - ab));
    }
    if (options.method === "ddim") {
      const [a, s] = [Math.sqrt(abPrev), Math.sqrt(1 - abPrev)];
      for (let j = 0; j < x.length; j++) x[j] = a * x0[j]! + s * eps[j]!;
    } else {
      // Posterior q(x_prev | x_t, x0) of the (respaced) chain: mean c0 x0 + c1 x_t, variance beta~.
      const alpha = ab / abPrev;
      const beta = 1 - alpha;
      const c0 = (Math.sqrt(abPrev) * beta) / (1 - ab);
      const c1 = (Math.sqrt(alpha) * (1 - abPrev)) / (1 - ab);
      const sigma = Math.sqrt((beta * (1 - abPrev)) / (1 - ab));
      const z = sigma > 0 ? noise(i + 1) : undefined;
      for (let j = 0; j < x.length; j++) x[j] = c0 * x0[j]! + c1 * x[j]! + (z ? sigma * z[j]! : 0);
    }
    onStep?.({ step: i + 1, of: times.length, t });
  }
  return x;
}

async function integrateFlow(
  times: readonly number[],
  x: Float32Array,
  predict: Predict,
  options: SamplerOptions,
  onStep: ((p: SampleProgress) => void) | undefined,
): Promise<Float32Array> {
  const velocity = async (at: Float32Array, t: number) =>
    flowVelocity(options.target, await predict(at, t), at, t);
  for (let i = 0; i + 1 < times.length; i++) {
    const [t, next] = [times[i]!, times[i + 1]!];
    const dt = next - t; // negative: time runs from noise (1) to data (0)
    const v1 = await velocity(x, t);
    // Heun's correction would evaluate the model at t = 0; the last step stays an Euler step (as in EDM).
    if (options.method === "euler" || next === 0) {
      for (let j = 0; j < x.length; j++) x[j] = x[j]! + dt * v1[j]!;
    } else {
      const euler = x.map((v, j) => v + dt * v1[j]!);
      const v2 = await velocity(euler, next);
      for (let j = 0; j < x.length; j++) x[j] = x[j]! + (dt * (v1[j]! + v2[j]!)) / 2;
    }
    onStep?.({ step: i + 1, of: times.length - 1, t });
  }
  return x;
}
