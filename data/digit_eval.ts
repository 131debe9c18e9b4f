/**
 * The evaluation of a Transfusion run on MNIST digits:
 *   generation  K images per digit from a caption template, read by an independent classifier
 *   captioning  greedy captions of held-out real digits; right when the first digit mentioned
 *               (numeral or English word) is the label
 *   held-out    the forward entry's loss and metrics over the data source's eval batches
 */
import { digitCaption, digitImage, T1_CAPTION_TEMPLATE, testDigits } from "./mnist_captions.ts";
import { loadMnist, MNIST_PIXELS } from "./mnist.ts";
import { digitFromModelImage } from "../runtime/generate/images.ts";
import type { DigitClassifier } from "./digit_classifier.ts";
import type { ModelRun } from "../runtime/generate/run.ts";
import {
  captionImages,
  defaultMethod,
  generateImages,
  heldOutLosses,
} from "../runtime/generate/transfusion.ts";
import type { SamplerMethod } from "../runtime/generate/sampler.ts";

export interface DigitEvalOptions {
  readonly nPerDigit: number;
  readonly steps: number;
  readonly cfg: number;
  readonly seed: number;
  readonly method?: SamplerMethod;
  /** Caption template with `{n}` / `{word}` (default: `promptTemplate(run)`). */
  readonly template?: string;
  /** Held-out real digits to caption (default 100, the classes in turn). */
  readonly captionCount?: number;
  /**
   * Training digits to caption as well (default 0: none): next to the held-out figure, the gap
   * between the two is how much of captioning the model learned by heart.
   */
  readonly trainCaptionCount?: number;
  /** Held-out loss batches at most (default all). */
  readonly lossBatches?: number;
  readonly log?: (line: string) => void;
  /**
   * Called with the generated digits (per digit, in the classifier's 28x28 frame) as soon as they
   * are drawn, before captioning: the demo shows them while the rest of the evaluation runs.
   */
  readonly onSamples?: (samples: readonly (readonly Float32Array[])[]) => void | Promise<void>;
}

export interface DigitEval {
  readonly generation: {
    readonly accuracy: number;
    /** The 95% Wilson score interval of `accuracy` over the 10 * nPerDigit images. */
    readonly interval95: readonly [number, number];
    /** Accuracy per digit 0..9. */
    readonly perDigit: readonly number[];
    readonly nPerDigit: number;
    readonly method: SamplerMethod;
    readonly steps: number;
    readonly cfg: number;
    readonly template: string;
    readonly seconds: number;
    /** Wall time of one sampler step over one chunk of prompts (one model call), compile excluded. */
    readonly secondsPerStep: number;
  };
  readonly classifier: {
    /** On the held-out digits as they are (28x28). */
    readonly testAccuracy: number;
    /** On the same digits after a round trip through the model's image frame (as generated ones are). */
    readonly frameAccuracy: number;
    readonly trainedNow: boolean;
  };
  readonly captioning: {
    readonly accuracy: number;
    /** The 95% Wilson score interval of `accuracy` over `count` digits. */
    readonly interval95: readonly [number, number];
    readonly count: number;
    readonly seconds: number;
    readonly examples: readonly { readonly label: number; readonly caption: string }[];
  };
  /** Captioning of training digits, when asked for (`trainCaptionCount`). */
  readonly trainCaptioning?: {
    readonly accuracy: number;
    readonly interval95: readonly [number, number];
    readonly count: number;
  };
  readonly heldOut: { readonly batches: number; readonly values: Readonly<Record<string, number>> };
}

export interface DigitEvalOutput {
  readonly result: DigitEval;
  /** The generated digits, 28x28 in [0, 1], per digit 0..9 (K each). */
  readonly samples: readonly (readonly Float32Array[])[];
  /** The captioned real digits, 28x28 in [0, 1], in `result.captioning.examples` order. */
  readonly captioned: readonly Float32Array[];
}

const DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const MENTION = new RegExp(`\\d|\\b(${DIGIT_WORDS.join("|")})\\b`, "i");

/** The first digit a text mentions, as a numeral or an English word; undefined if none. */
export function mentionedDigit(text: string): number | undefined {
  const m = MENTION.exec(text);
  if (!m) return undefined;
  return m[1] ? DIGIT_WORDS.indexOf(m[1].toLowerCase()) : Number(m[0]);
}

/**
 * The caption a run was trained to draw from: the first template of its MNIST captions source
 * (examples/transfusion_demo_cpu.ts trains on "digit {n}", the shipped checkpoint on T1's
 * "a handwritten digit {n}"), or T1's template for a source without templates.
 */
export function promptTemplate(run: Pick<ModelRun, "model" | "config" | "dims">): string {
  const source = run.model.data?.(run.config as never, run.dims) as { templates?: unknown } | undefined;
  const first = Array.isArray(source?.templates) ? source.templates[0] : undefined;
  return typeof first === "string" ? first : T1_CAPTION_TEMPLATE;
}

export async function evaluateDigits(
  run: ModelRun,
  classifier: DigitClassifier,
  opts: DigitEvalOptions,
): Promise<DigitEvalOutput> {
  const log = opts.log ?? (() => {});
  const { generation, samples } = await scoreGeneration(run, classifier, opts, log);
  await opts.onSamples?.(samples);
  const frameAccuracy = await classifierInFrame(run, classifier);
  const { captioning, captioned } = await scoreCaptions(run, "held-out", opts.captionCount ?? 100, log);
  const trainCount = opts.trainCaptionCount ?? 0;
  const onTrain = trainCount > 0
    ? (await scoreCaptions(run, "training", trainCount, log)).captioning
    : undefined;
  let heldOut: DigitEval["heldOut"] = { batches: 0, values: {} };
  if (run.model.data) {
    log("held-out losses");
    const source = run.model.data(run.config as never, run.dims);
    heldOut = await heldOutLosses(run, source, run.dims.batch ?? 1, opts.lossBatches);
  }
  const result: DigitEval = {
    generation,
    classifier: { testAccuracy: classifier.testAccuracy, frameAccuracy, trainedNow: classifier.trained },
    captioning,
    ...(onTrain
      ? {
        trainCaptioning: { accuracy: onTrain.accuracy, interval95: onTrain.interval95, count: onTrain.count },
      }
      : {}),
    heldOut,
  };
  return { result, samples, captioned };
}

/** K images per digit from the template, read by the classifier. */
async function scoreGeneration(
  run: ModelRun,
  classifier: DigitClassifier,
  opts: DigitEvalOptions,
  log: (line: string) => void,
) {
  const { image } = run.config;
  const template = opts.template ?? promptTemplate(run);
  const method = opts.method ?? defaultMethod(run.config);
  const K = opts.nPerDigit;
  const prompts = DIGIT_WORDS.flatMap((_, d) => Array<string>(K).fill(digitCaption(d, template)));
  log(`generating ${prompts.length} digits (${K} per digit, ${method} ${opts.steps} steps, cfg ${opts.cfg})`);
  const started = performance.now();
  // Steady-state step time: from the end of the first step (pipelines warm) to the end of the last.
  const stepEnds: number[] = [];
  const generated = await generateImages(run, prompts, {
    method,
    steps: opts.steps,
    cfg: opts.cfg,
    seed: opts.seed,
    onStep: () => stepEnds.push(performance.now()),
  });
  const seconds = (performance.now() - started) / 1000;
  const digits = generated.map((x) => digitFromModelImage(x, image.size, image.channels));
  const predicted = await classifier.classify(digits);
  const rightPerDigit = DIGIT_WORDS.map((_, d) => {
    let right = 0;
    for (let k = 0; k < K; k++) right += predicted[d * K + k] === d ? 1 : 0;
    return right;
  });
  const right = rightPerDigit.reduce((a, b) => a + b, 0);
  const generation: DigitEval["generation"] = {
    accuracy: right / (10 * K),
    interval95: wilsonInterval(right, 10 * K),
    perDigit: rightPerDigit.map((r) => r / K),
    nPerDigit: K,
    method,
    steps: opts.steps,
    cfg: opts.cfg,
    template,
    seconds,
    secondsPerStep: stepEnds.length > 1
      ? (stepEnds.at(-1)! - stepEnds[0]!) / 1000 / (stepEnds.length - 1)
      : NaN,
  };
  return { generation, samples: DIGIT_WORDS.map((_, d) => digits.slice(d * K, (d + 1) * K)) };
}

/**
 * The 95% Wilson score interval of a proportion of `right` out of `n` (z = 1.96): unlike the normal
 * approximation it stays inside [0, 1] and is honest near 0% and 100%, where eval figures live.
 * n = 0 gives [0, 1] (nothing is known).
 */
export function wilsonInterval(right: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959964, p = right / n, z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z / (1 + z2n)) * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** The classifier's accuracy on real held-out digits after a round trip through the model's frame. */
async function classifierInFrame(run: ModelRun, classifier: DigitClassifier): Promise<number> {
  const { image } = run.config;
  const test = testDigits();
  const framed = Array.from(
    { length: test.count },
    (_, i) => digitFromModelImage(digitImage(test, i, image), image.size, image.channels),
  );
  const classes = await classifier.classify(framed);
  return classes.filter((c, i) => c === test.labels[i]).length / test.count;
}

/** Greedy captions of `wanted` digits of a split (the classes in turn), right when they name the label. */
async function scoreCaptions(
  run: ModelRun,
  split: "held-out" | "training",
  wanted: number,
  log: (line: string) => void,
) {
  const set = split === "held-out" ? testDigits() : loadMnist().train;
  const count = Math.min(wanted, set.count);
  log(`captioning ${count} ${split} digits`);
  const started = performance.now();
  const indices = balancedIndices(set.labels, count);
  const captions = await captionImages(run, indices.map((i) => digitImage(set, i, run.config.image)));
  const examples = indices.map((i, j) => ({ label: set.labels[i]!, caption: captions[j]! }));
  const right = examples.filter((e) => mentionedDigit(e.caption) === e.label).length;
  const captioning: DigitEval["captioning"] = {
    accuracy: count > 0 ? right / count : 0,
    interval95: wilsonInterval(right, count),
    count,
    seconds: (performance.now() - started) / 1000,
    examples,
  };
  return {
    captioning,
    captioned: indices.map((i) => set.images.slice(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS)),
  };
}

/**
 * `count` indices taking each class in turn (0, 1, ..., 9, 0, ...), each class in its stored order:
 * the held-out split is not interleaved at its start, so its first digits would be one class.
 */
export function balancedIndices(labels: Int32Array, count: number): number[] {
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    const members = byClass.get(label);
    if (members) members.push(i);
    else byClass.set(label, [i]);
  });
  const classes = [...byClass.keys()].sort((a, b) => a - b).map((k) => byClass.get(k)!);
  const out: number[] = [];
  for (let k = 0; out.length < Math.min(count, labels.length); k++) {
    for (const members of classes) if (k < members.length && out.length < count) out.push(members[k]!);
  }
  return out;
}

/** Milliseconds per sampler step, or "-" when the run had a single step to time. */
export function msPerStep(seconds: number): string {
  return Number.isFinite(seconds) ? (1000 * seconds).toFixed(0) : "-";
}

/** A fraction as a percentage with one decimal: 0.915 -> "91.5%". */
export const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/** An interval of fractions as percentages: [0.87, 0.94] -> "87.0-94.0%". */
export const percentRange = ([lo, hi]: readonly [number, number]) =>
  `${(100 * lo).toFixed(1)}-${percent(hi)}`;

/** The figures as a few lines for a person. */
export function formatDigitEval(r: DigitEval): string {
  const p = percent;
  const ci = (range: readonly [number, number]) => `[95% CI ${percentRange(range)}]`;
  const g = r.generation;
  const losses = Object.entries(r.heldOut.values).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
  return [
    `generated-digit accuracy  ${p(g.accuracy)} ${
      ci(g.interval95)
    }  (${g.nPerDigit} per digit, "${g.template}", ` +
    `${g.method} ${g.steps} steps, cfg ${g.cfg}; ${g.seconds.toFixed(1)} s incl. first-run warm-up, ${
      msPerStep(g.secondsPerStep)
    } ms/step)`,
    `  per digit               ${g.perDigit.map((a, d) => `${d}:${Math.round(100 * a)}`).join(" ")}`,
    `  classifier accuracy     ${p(r.classifier.frameAccuracy)} on held-out digits in the model's frame, ` +
    `${p(r.classifier.testAccuracy)} at 28x28${r.classifier.trainedNow ? " (trained now)" : ""}`,
    `captioning accuracy       ${p(r.captioning.accuracy)} ${
      ci(r.captioning.interval95)
    }  (${r.captioning.count} held-out digits, ` +
    `${r.captioning.seconds.toFixed(1)} s)`,
    ...(r.trainCaptioning
      ? [
        `  on training digits      ${p(r.trainCaptioning.accuracy)} ${ci(r.trainCaptioning.interval95)}  ` +
        `(${r.trainCaptioning.count} digits the model trained on; the gap to held-out is learned by heart)`,
      ]
      : []),
    `held-out losses           ${losses || "none (the spec has no data source)"}` +
    (r.heldOut.batches ? `  (${r.heldOut.batches} batches)` : ""),
  ].join("\n");
}
