/**
 * An exponential moving average of the parameters (EMA), the weights diffusion models are sampled
 * with (DDPM, ADM, DiT all keep one): the raw weights of the last step carry that step's noise; the
 * average over the last ~1/(1 - decay) steps draws cleaner samples.
 *
 * The trainer keeps it on the device (runtime/train/device_average.ts, kernels/moving_average.ts);
 * this class is its host twin and oracle: the same update, on parameters read back. Every `every`
 * steps (and at each save) the steps since the last update are folded in at once:
 *   avg <- avg * D + params * (1 - D),   D = prod over those steps s of decayAt(s)
 * with decayAt(s) = min(decay, (1 + s) / (10 + s)), the usual warmup that keeps the average from
 * clinging to the initialization in a short run.
 */

/** The per-step decay at 1-based step `s` (after `s` optimizer steps). */
export function decayAt(decay: number, s: number): number {
  return Math.min(decay, (1 + s) / (10 + s));
}

/** D of an update at `to` whose last one was at `from`: the product of decayAt over (from, to]. */
export function foldedDecay(decay: number, from: number, to: number): number {
  let keep = 1;
  for (let s = from + 1; s <= to; s++) keep *= decayAt(decay, s);
  return keep;
}

export class WeightAverage {
  readonly #decay: number;
  readonly #values: Map<string, Float32Array>;
  #step: number;

  /** Starts the average at `values` (copied), as of `step` optimizer steps. */
  constructor(decay: number, values: ReadonlyMap<string, ArrayLike<number>>, step: number) {
    if (!(decay > 0 && decay < 1)) {
      throw new RangeError(`WeightAverage: decay must be in (0, 1), got ${decay}`);
    }
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`WeightAverage: step must be a non-negative integer, got ${step}`);
    }
    this.#decay = decay;
    this.#values = new Map([...values].map(([k, v]) => [k, Float32Array.from(v)]));
    this.#step = step;
  }

  /** The step the average is current to. */
  get step(): number {
    return this.#step;
  }

  /** The averaged parameters by path (live views: copy before changing them). */
  get values(): ReadonlyMap<string, Float32Array> {
    return this.#values;
  }

  /** Folds in `params`, the parameters after `step` steps, for every step since the last update. */
  update(params: ReadonlyMap<string, ArrayLike<number>>, step: number): void {
    if (!Number.isInteger(step) || step < this.#step) {
      throw new RangeError(`WeightAverage.update: step ${step} is before the average's step ${this.#step}`);
    }
    if (step === this.#step) return;
    const keep = foldedDecay(this.#decay, this.#step, step);
    const take = 1 - keep;
    for (const [path, avg] of this.#values) {
      const p = params.get(path);
      if (!p || p.length !== avg.length) {
        throw new RangeError(
          `WeightAverage.update: parameter "${path}" ${
            p ? `has ${p.length} values, expected ${avg.length}` : "is missing"
          }`,
        );
      }
      for (let i = 0; i < avg.length; i++) avg[i] = avg[i]! * keep + p[i]! * take;
    }
    this.#step = step;
  }
}
