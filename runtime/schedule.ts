/** The learning-rate schedule: linear warmup, then cosine decay to a floor. */
export interface LearningRateSchedule {
  /** The rate reached at the end of warmup. */
  readonly peak: number;
  /** Warmup steps; 0 starts at the peak. */
  readonly warmup: number;
  /** The step at which the cosine reaches `floor`. */
  readonly total: number;
  /** The rate after `total` steps. */
  readonly floor: number;
}

/**
 * The learning rate for 0-based `step`:
 * - warmup (`step < warmup`): `peak * (step + 1) / warmup`, so step 0 already trains and step
 *   `warmup - 1` is at the peak;
 * - decay (`warmup <= step < total`): `floor + (peak - floor) * (1 + cos(pi * progress)) / 2` with
 *   `progress = (step - warmup) / (total - warmup)`, from the peak at `warmup` towards the floor;
 * - after (`step >= total`): `floor`.
 *
 * @example
 * ```ts
 * learningRate(0, { peak: 1e-3, warmup: 10, total: 110, floor: 1e-4 }); // 1e-4
 * learningRate(60, { peak: 1e-3, warmup: 10, total: 110, floor: 1e-4 }); // 5.5e-4
 * ```
 */
export function learningRate(step: number, s: LearningRateSchedule): number {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`learningRate: step must be a non-negative integer, got ${step}`);
  }
  if (!(s.warmup >= 0 && s.total >= 0 && s.peak >= 0 && s.floor >= 0)) {
    throw new Error(`learningRate: peak, floor, warmup and total must be >= 0, got ${JSON.stringify(s)}`);
  }
  if (step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  if (step >= s.total) return s.floor;
  const progress = (step - s.warmup) / (s.total - s.warmup);
  return s.floor + ((s.peak - s.floor) * (1 + Math.cos(Math.PI * progress))) / 2;
}
