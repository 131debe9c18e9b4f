/**
 * A time budget for a run: the loop trains a few steps, measures their pace on this machine, and
 * asks the budget how many steps the run has and how often it samples. The same spec then trains
 * 600 steps on a slow CPU and 6000 on a GPU in the same ten minutes, and its learning-rate
 * schedule (warmup, cosine decay to the floor) ends where the run ends instead of being cut off
 * halfway down.
 *
 * The sizing step is a boundary (nothing is in flight past it): the sample hook runs there first
 * (a caller can time a first sample to reserve time for what follows training), then `size`
 * decides. Every step after it is submitted with the sized schedule; the steps before it ran in
 * warmup, whose rates do not depend on the total, so the run computes what a run given the sized
 * total from the start computes (when `warmup` covers the measured steps: the loop says so when not).
 * The sized total is written to training.json, so a resumed run keeps it.
 */

/** What the loop measured when it sizes the run. */
export interface MeasuredPace {
  /** Steps taken when sizing (the boundary step). */
  readonly step: number;
  /** Wall milliseconds per train step over the measured steps (the first step is left out). */
  readonly msPerStep: number;
  /** `performance.now()` at sizing, after the sample hook ran. */
  readonly now: number;
}

/** What a budget decides: the run's total steps and its sample period (0: none). */
export interface BudgetPlan {
  readonly steps: number;
  readonly sampleEvery?: number;
}

export interface TrainBudget {
  /** Steps timed before sizing; the first step (pipelines warming up) comes before them. Default 10. */
  readonly measureSteps?: number;
  readonly size: (pace: MeasuredPace) => BudgetPlan;
}

export const DEFAULT_MEASURE_STEPS = 10;

/**
 * Steps that fit before `deadline` (a `performance.now()` time) at the measured pace, keeping
 * `reserveMs` for what comes after training; at least one more step than already taken.
 *
 * @example
 * ```ts
 * stepsWithin({ step: 11, msPerStep: 400, now: 60_000 }, 660_000, 120_000); // 11 + 1200
 * ```
 */
export function stepsWithin(pace: MeasuredPace, deadline: number, reserveMs = 0): number {
  if (!(pace.msPerStep > 0)) throw new Error(`stepsWithin: msPerStep must be > 0, got ${pace.msPerStep}`);
  const left = deadline - pace.now - reserveMs;
  return pace.step + Math.max(1, Math.floor(left / pace.msPerStep));
}

/** A budget of `minutes` of training from `started` (a `performance.now()` time), as `train --minutes`. */
export function minutesBudget(minutes: number, started: number): TrainBudget {
  if (!(minutes > 0)) throw new Error(`minutesBudget: minutes must be > 0, got ${minutes}`);
  return { size: (pace) => ({ steps: stepsWithin(pace, started + minutes * 60_000) }) };
}
