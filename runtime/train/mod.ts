/**
 * Training: the loop behind `deno task train`, usable from code (the demo, tests).
 *
 * @example
 * ```ts
 * import spec from "../../tests/fixtures/tiny_regression.ts";
 * const result = await train({
 *   model: spec,
 *   specPath: "tests/fixtures/tiny_regression.ts",
 *   out: "runs/tiny_regression",
 *   settings: { steps: 100, logEvery: 10 },
 *   onLog: (r) => console.log(progressLine(r)),
 * });
 * console.log(result.step, result.records.at(-1)?.loss);
 * ```
 */
export { type LoopTime, train, type TrainOptions, type TrainResult } from "./loop.ts";
export { logLine, type LogRecord, progressLine } from "./progress.ts";
export { type LogLine, RUN_FILES } from "./run_dir.ts";
export {
  registerSampleHook,
  type SampleContext,
  type SampleHook,
  sampleHookFor,
  type SpecKind,
} from "./sample_hooks.ts";
export { DEFAULT_SETTINGS, TrainError, type TrainSettings } from "./settings.ts";
export {
  type BudgetPlan,
  DEFAULT_MEASURE_STEPS,
  type MeasuredPace,
  minutesBudget,
  stepsWithin,
  type TrainBudget,
} from "./budget.ts";
