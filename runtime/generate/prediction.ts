/**
 * The arithmetic of a diffusion step that does not depend on how the model is run: the noising
 * process, turning a prediction in the model's target space into noise and clean-image estimates,
 * the timestep subsequences of respaced samplers, and the classifier-free guidance combination.
 */

/** A sampling request that cannot work (steps, weight, method vs. model); the message says why. */
export class SamplingError extends Error {
  override name = "SamplingError";
}

/** What the model predicts (config diffusion.target). */
export type PredictionTarget = "eps" | "v" | "x0" | "velocity";
export const PREDICTION_TARGETS: readonly PredictionTarget[] = ["eps", "v", "x0", "velocity"];

/**
 * The forward (noising) process a model was trained with.
 *   ddpm: x_t = sqrt(alphaBar[t]) x0 + sqrt(1 - alphaBar[t]) eps, t integer in [0, T), T = alphaBar.length.
 *   flow: x_t = (1 - t) x0 + t eps, t in [0, 1] (t = 1 is pure noise); velocity = dx_t/dt = eps - x0.
 */
export type NoiseProcess =
  | { readonly kind: "ddpm"; readonly alphaBar: Float64Array }
  | { readonly kind: "flow" };

/** eps and x0 estimated from a prediction `pred` of `target` at x_t with cumulative alpha `alphaBar`. */
export function epsAndX0(
  target: PredictionTarget,
  pred: Float32Array,
  xt: Float32Array,
  alphaBar: number,
): { eps: Float32Array; x0: Float32Array } {
  const a = Math.sqrt(alphaBar);
  const s = Math.sqrt(1 - alphaBar);
  const eps = new Float32Array(pred.length);
  const x0 = new Float32Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    const [p, x] = [pred[i]!, xt[i]!];
    if (target === "eps") [eps[i], x0[i]] = [p, (x - s * p) / a];
    else if (target === "x0") [eps[i], x0[i]] = [(x - a * p) / s, p];
    else if (target === "v") [eps[i], x0[i]] = [s * x + a * p, a * x - s * p]; // v = a eps - s x0
    else throw new Error(`a DDPM model cannot predict "${target}" (that target belongs to flow matching)`);
  }
  return { eps, x0 };
}

/** The flow-matching velocity (eps - x0) from a prediction of `target` at x_t, time t in [0, 1]. */
export function flowVelocity(target: PredictionTarget, pred: Float32Array, xt: Float32Array, t: number) {
  if (target === "velocity") return pred;
  const out = new Float32Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    const [p, x] = [pred[i]!, xt[i]!];
    // x_t = (1 - t) x0 + t eps: given one of eps / x0 the other follows, and so does eps - x0.
    if (target === "eps") out[i] = t < 1 ? (p - x) / (1 - t) : p;
    else if (target === "x0") out[i] = t > 0 ? (x - p) / t : 0;
    else throw new Error(`a flow-matching model cannot predict "${target}"; use velocity, eps or x0`);
  }
  return out;
}

/**
 * `steps` timesteps of [0, T), evenly spaced from T - 1 down to 0, highest first (the first step
 * starts from pure noise, the last one lands on t = 0). `steps = T` gives every timestep.
 */
export function timestepSubsequence(T: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > T) {
    throw new SamplingError(`sampling steps must be an integer in 1..${T} (the schedule's T), got ${steps}`);
  }
  if (steps === 1) return [T - 1];
  const out: number[] = [];
  for (let i = steps - 1; i >= 0; i--) out.push(Math.round((i * (T - 1)) / (steps - 1)));
  return out;
}

/**
 * Classifier-free guidance is on for weights other than 0 and 1: both mean a plain conditional
 * prediction (one model row per image); any other weight runs conditional and unconditional rows.
 */
export function usesGuidance(weight: number): boolean {
  return weight !== 0 && weight !== 1;
}

/** uncond + w (cond - uncond), elementwise. Linear with weights summing to 1, so the target space does
 * not matter: combining eps, v, x0 or velocity predictions of the same x_t gives the same step. */
export function guide(cond: Float32Array, uncond: Float32Array, weight: number): Float32Array {
  if (cond.length !== uncond.length) {
    throw new Error(`guide: ${cond.length} conditional values vs ${uncond.length} unconditional`);
  }
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i]! + weight * (cond[i]! - uncond[i]!);
  return out;
}
