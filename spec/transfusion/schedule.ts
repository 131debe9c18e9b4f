/**
 * Diffusion noise schedules as plain numbers, shared by the model (a frozen alpha_bar table), the
 * data pipeline and the sampler. Nothing here touches the tracer.
 */
import type { DiffusionConfig } from "./config.ts";

export interface DiffusionSchedule {
  readonly kind: DiffusionConfig["schedule"];
  readonly T: number;
  /** DDPM: alpha_bar(t) = prod_{s <= t} (1 - beta_s) for t = 0 .. T-1; empty for flow matching. */
  readonly alphaBar: Float64Array;
  /** DDPM: beta_t for t = 0 .. T-1; empty for flow matching. */
  readonly betas: Float64Array;
}

/** Nichol & Dhariwal's offset, so beta_0 is not vanishingly small. */
export const COSINE_OFFSET = 0.008;
/** Betas are clipped here, so the last steps do not divide by alpha_bar ~ 0. */
export const MAX_BETA = 0.999;
export const LINEAR_BETAS = { start: 1e-4, end: 0.02 } as const;

/**
 * The schedule of `config`: cosine (Nichol & Dhariwal, "Improved DDPM", eq. 17: f(t) =
 * cos^2((t/T + s) / (1 + s) * pi/2), beta_t = min(1 - f(t+1)/f(t), 0.999)), linear (DDPM: betas
 * evenly from 1e-4 to 0.02), or flow matching, which has no table.
 */
export function diffusionSchedule(config: Pick<DiffusionConfig, "schedule" | "T">): DiffusionSchedule {
  const { schedule: kind, T } = config;
  if (!Number.isInteger(T) || T < 1) {
    throw new Error(`diffusionSchedule: T must be an integer >= 1, got ${T}`);
  }
  if (kind === "flow") return { kind, T, alphaBar: new Float64Array(0), betas: new Float64Array(0) };
  const betas = new Float64Array(T);
  if (kind === "cosine") {
    const f = (t: number) => Math.cos(((t / T + COSINE_OFFSET) / (1 + COSINE_OFFSET)) * Math.PI / 2) ** 2;
    for (let t = 0; t < T; t++) betas[t] = Math.min(1 - f(t + 1) / f(t), MAX_BETA);
  } else {
    const { start, end } = LINEAR_BETAS;
    for (let t = 0; t < T; t++) betas[t] = T === 1 ? start : start + (end - start) * t / (T - 1);
  }
  const alphaBar = new Float64Array(T);
  let prod = 1;
  for (let t = 0; t < T; t++) alphaBar[t] = prod *= 1 - betas[t]!;
  return { kind, T, alphaBar, betas };
}
