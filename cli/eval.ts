/**
 * `deno task eval <DIR> [--json] [--n-per-digit K] [--steps S] [--sampler M] [--cfg W] [--seed S]
 *    [--captions N] [--train-captions N] [--loss-batches N] [--template T] [--classifier DIR] [--classifier-steps N]
 *    [--weights ema|raw]`
 *
 * Evaluates a Transfusion run on MNIST digits:
 *   1. generated-digit accuracy: K images per digit 0..9 from the caption template (default "a
 *      handwritten digit {n}"), read by the digit classifier of examples/digit_classifier.ts (trained
 *      by this compiler and shipped in examples/checkpoints/digit_classifier/; a cache in --classifier,
 *      default runs/digit-classifier/, comes first, and where neither fits the spec's source it is
 *      trained into the cache; its own test accuracy is reported next to the figure;
 *      --classifier-steps sets its training length, and a checkpoint trained for fewer steps is
 *      trained again);
 *   2. captioning accuracy: greedy captions of N held-out real digits, right when the first digit
 *      they mention (numeral or word) is the label; with --train-captions N also of N training
 *      digits, whose gap to the held-out figure measures overfitting;
 *   3. held-out losses: the forward entry over the data source's eval batches.
 * The run's moving-average weights are evaluated when it kept them (`--weights raw` for the last
 * step's). `--json` prints one JSON object and nothing else on stdout. The run directory is only read.
 * A run trained on the shapes dataset (data/shapes.ts) gets the shapes evaluation instead, with its own
 * flags (data/shapes_eval_cli.ts).
 */
import { runCli, UsageError } from "./load_spec.ts";
import { evaluatesShapes, SHAPES_EVAL, shapesEvalMain } from "../data/shapes_eval_cli.ts";
import { command, helpText, parseCommand, usageLine, wantsHelp } from "./usage.ts";
import classifierSpec from "../examples/digit_classifier.ts";
import {
  asUsageErrors,
  intFlag,
  loadRun,
  type ModelRun,
  numberFlag,
  samplerFlag,
  warnIfSpecChanged,
  type Weights,
  weightsFlag,
} from "../runtime/generate/mod.ts";
import {
  type DigitClassifier,
  digitClassifier,
  type DigitEval,
  type DigitEvalOptions,
  type DigitEvalOutput,
  evaluateDigits,
  formatDigitEval,
} from "../data/mod.ts";

export const CLASSIFIER_SPEC = "examples/digit_classifier.ts";
export const CLASSIFIER_DIR = "runs/digit-classifier";
/** The classifier checkpoint the project ships (weights only), used when the cache has none. */
export const CLASSIFIER_SHIPPED = "examples/checkpoints/digit_classifier";

export const EVAL = command({
  name: "eval",
  args: "<DIR>",
  summary: "Evaluates a Transfusion run on MNIST digits: generated-digit accuracy (read by the shipped " +
    "digit classifier), captioning accuracy on held-out digits, and held-out losses. The run " +
    "directory is only read.",
  flags: {
    json: { type: "boolean", default: false, help: "print one JSON object and nothing else on stdout" },
    "n-per-digit": { type: "string", value: "K", help: "images generated per digit 0..9", defaultText: "10" },
    steps: { type: "string", value: "S", help: "sampler steps (capped at the run's T)", defaultText: "50" },
    sampler: {
      type: "string",
      value: "ddpm|ddim|euler|heun",
      help: "the sampler",
      defaultText: "ddim for DDPM runs, euler for flow matching",
    },
    cfg: { type: "string", value: "W", help: "classifier-free guidance weight", defaultText: "3" },
    seed: { type: "string", value: "S", help: "seed of the noise", defaultText: "0" },
    captions: { type: "string", value: "N", help: "held-out digits to caption", defaultText: "100" },
    "train-captions": {
      type: "string",
      value: "N",
      help: "training digits to caption too (the gap measures overfitting)",
      defaultText: "0",
    },
    "loss-batches": {
      type: "string",
      value: "N",
      help: "eval batches for the held-out losses",
      defaultText: "10",
    },
    template: {
      type: "string",
      value: "T",
      help: "caption template with {n} or {word}",
      defaultText: `"a handwritten digit {n}"`,
    },
    classifier: {
      type: "string",
      value: "DIR",
      help: "digit classifier cache (trained there when nothing fits)",
      defaultText: CLASSIFIER_DIR,
    },
    "classifier-steps": {
      type: "string",
      value: "N",
      help: "training steps of the classifier; a cache with fewer is retrained",
      defaultText: "its spec's",
    },
    weights: {
      type: "string",
      value: "ema|raw",
      help: "moving-average or last-step parameters",
      defaultText: "ema when the run kept it",
    },
  },
  examples: ["deno task eval runs/demo --n-per-digit 4 --captions 50", "deno task eval runs/demo --json"],
  notes: ["A run trained on the shapes dataset gets the shapes evaluation, with the flags below."],
});

const USAGE = usageLine(EVAL);

export interface EvalSettings {
  readonly nPerDigit: number;
  readonly steps: number;
  readonly cfg: number;
  readonly seed: number;
  readonly method?: "ddpm" | "ddim" | "euler" | "heun";
  readonly captions: number;
  /** Training digits to caption as well (0: none). */
  readonly trainCaptions?: number;
  readonly lossBatches: number;
  readonly template?: string;
  readonly classifierDir: string;
  /** Steps when the classifier must be trained (default: its spec's); a cache with fewer is retrained. */
  readonly classifierSteps?: number;
}

/** The digit classifier, loaded from its cache or trained (and cached) now. */
export function openClassifier(s: EvalSettings, log: (line: string) => void): Promise<DigitClassifier> {
  return digitClassifier({
    model: classifierSpec,
    specPath: CLASSIFIER_SPEC,
    dir: s.classifierDir,
    shipped: CLASSIFIER_SHIPPED,
    log,
    ...(s.classifierSteps ? { steps: s.classifierSteps } : {}),
  });
}

/** Evaluates `run` (an opened run, or the training executor in a hook) with `classifier`. */
export function evaluateWith(
  run: ModelRun,
  classifier: DigitClassifier,
  s: EvalSettings,
  log: (line: string) => void,
  onSamples?: DigitEvalOptions["onSamples"],
): Promise<DigitEvalOutput> {
  return asUsageErrors(() =>
    evaluateDigits(run, classifier, {
      nPerDigit: s.nPerDigit,
      steps: Math.min(s.steps, run.config.diffusion.T),
      cfg: s.cfg,
      seed: s.seed,
      captionCount: s.captions,
      trainCaptionCount: s.trainCaptions ?? 0,
      lossBatches: s.lossBatches,
      log,
      ...(s.method ? { method: s.method } : {}),
      ...(s.template ? { template: s.template } : {}),
      ...(onSamples ? { onSamples } : {}),
    })
  );
}

/** Where a result came from, for JSON and the report. */
export interface RunRef {
  readonly dir: string;
  readonly spec: string;
  readonly step: number;
  /** Which parameters were evaluated (absent: the training executor's, i.e. the raw ones). */
  readonly weights?: Weights;
}

/** One JSON object for tools: the run, then the figures (caption examples cut to 20). */
export function evalJson(run: RunRef, r: DigitEval): Record<string, unknown> {
  return {
    run: run.dir,
    spec: run.spec,
    step: run.step,
    weights: run.weights ?? "raw",
    ...r,
    captioning: { ...r.captioning, examples: r.captioning.examples.slice(0, 20) },
  };
}

async function main(): Promise<void> {
  if (wantsHelp(Deno.args)) return console.log(`${helpText(EVAL)}\n${helpText(SHAPES_EVAL)}`);
  if (await evaluatesShapes(Deno.args)) return await shapesEvalMain(Deno.args);
  const { values, positionals } = parseCommand(EVAL, Deno.args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
  const template = values.template;
  if (template !== undefined && !template.includes("{n}") && !template.includes("{word}")) {
    throw new UsageError(`--template must contain {n} or {word}, got "${template}"`);
  }
  const method = samplerFlag(values.sampler);
  const classifierSteps = intFlag("classifier-steps", values["classifier-steps"], 1);
  const settings: EvalSettings = {
    nPerDigit: intFlag("n-per-digit", values["n-per-digit"], 1, 1000) ?? 10,
    steps: intFlag("steps", values.steps, 1) ?? 50,
    cfg: numberFlag("cfg", values.cfg, 0) ?? 3,
    seed: intFlag("seed", values.seed, 0, 2 ** 32 - 1) ?? 0,
    captions: intFlag("captions", values.captions, 0) ?? 100,
    trainCaptions: intFlag("train-captions", values["train-captions"], 0) ?? 0,
    lossBatches: intFlag("loss-batches", values["loss-batches"], 0) ?? 10,
    classifierDir: values.classifier ?? CLASSIFIER_DIR,
    ...(classifierSteps ? { classifierSteps } : {}),
    ...(method ? { method } : {}),
    ...(template ? { template } : {}),
  };
  const weights = weightsFlag(values.weights);
  const run = await loadRun(dir, weights ? { weights } : {});
  try {
    warnIfSpecChanged(run);
    const log = (line: string) => console.error(line);
    const classifier = await openClassifier(settings, log);
    try {
      const { result } = await evaluateWith(run, classifier, settings, log);
      const ref = { dir: run.dir, spec: run.specPath, step: run.info.step, weights: run.weights };
      console.log(
        values.json
          ? JSON.stringify(evalJson(ref, result))
          : `${run.dir} at step ${ref.step}, ${run.weights} weights\n${formatDigitEval(result)}`,
      );
    } finally {
      classifier.destroy();
    }
  } finally {
    run.destroy();
  }
}

if (import.meta.main) await runCli(main);
