/**
 * The moving average of the parameters, kept on the device by the plan's `emaUpdate` entry (compiled
 * with `average: true`; kernels/moving_average.ts): an update is one dispatch over the parameter
 * vector with no readback, so a loop with steps in flight never waits on it. The host only tracks the
 * step the average is current to and writes the folded decay (weight_average.ts `foldedDecay`, the
 * same schedule as the host twin `WeightAverage`). The average reaches the host only inside a
 * checkpoint's single readback.
 */
import { AVERAGE_BUFFER, AVERAGE_SCALAR } from "../../kernels/moving_average.ts";
import type { Executor } from "../executor.ts";
import { foldedDecay } from "./weight_average.ts";

export class DeviceAverage {
  #step: number;

  private constructor(private readonly executor: Executor, readonly decay: number, step: number) {
    this.#step = step;
  }

  /**
   * An average as of the executor's present step: `values` (a checkpoint's average) written to the
   * device, or without them the present parameters (one update with keep 0, on the device).
   */
  static async start(
    executor: Executor,
    decay: number,
    values?: ReadonlyMap<string, ArrayLike<number>>,
  ): Promise<DeviceAverage> {
    if (!executor.hasBuffer(AVERAGE_BUFFER) || !executor.plan.entries.emaUpdate) {
      throw new Error(`plan "${executor.plan.model}" keeps no moving average: compile it with average: true`);
    }
    if (!(decay > 0 && decay < 1)) {
      throw new RangeError(`DeviceAverage: decay must be in (0, 1), got ${decay}`);
    }
    const average = new DeviceAverage(executor, decay, executor.step);
    if (values) await executor.setParamBuffer(AVERAGE_BUFFER, values);
    else await average.#fold(0);
    return average;
  }

  /** The step the average is current to. */
  get step(): number {
    return this.#step;
  }

  /** Folds in the parameters after `step` steps for every step since the last update (queued). */
  async update(step: number): Promise<void> {
    if (!Number.isInteger(step) || step < this.#step) {
      throw new RangeError(`DeviceAverage.update: step ${step} is before the average's step ${this.#step}`);
    }
    if (step === this.#step) return;
    await this.#fold(foldedDecay(this.decay, this.#step, step));
    this.#step = step;
  }

  async #fold(keep: number): Promise<void> {
    const run = await this.executor.submit("emaUpdate", {}, { scalars: { [AVERAGE_SCALAR]: keep } });
    await run.results; // no outputs: resolves without a readback
  }
}
