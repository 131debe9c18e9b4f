/**
 * MNIST digits with short captions, as Transfusion training rows (spec/transfusion/sequence.ts).
 * Each row holds one digit: caption-first (text-to-image) 80% of the time, image-first (captioning)
 * otherwise, as in the paper; a caption-first row drops its caption with probability
 * `config.diffusion.condDropout` (classifier-free guidance). Image-first rows keep theirs: the
 * caption is their target, not a condition.
 *
 * Batches are pure functions of (seed, step): example g = step * batch + i of the run is position
 * g mod n of the permutation of epoch floor(g / n), and each row's order, dropout and template come
 * from a generator seeded by (seed, step).
 */
import { type DigitSet, loadMnist, MNIST_PIXELS, MNIST_SIDE, shiftedDigit } from "./mnist.ts";
import type { DataSource, DeviceData, ImageGather } from "../spec/data.ts";
import {
  assembleBatch,
  assembleLayout,
  type CaptionOrder,
  type Example,
  type LossInputs,
  type SequenceConfig,
} from "../spec/transfusion/sequence.ts";
import { mix, uniform } from "./seeded_random.ts";

/** Placeholders: `{n}` the numeral ("7"), `{word}` the English word ("seven"). */
export const CAPTION_TEMPLATES: readonly string[] = [
  "a handwritten digit {n}",
  "the number {word}",
  "{n}",
  "the digit {word}",
  "handwritten {word}",
  "the number {n}",
];
/** The T1 benchmark's only caption. */
export const T1_CAPTION_TEMPLATE = "a handwritten digit {n}";

const DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

export function digitCaption(d: number, template: string): string {
  const word = DIGIT_WORDS[d];
  if (!Number.isInteger(d) || word === undefined) throw new Error(`digitCaption: digit ${d} is not 0..9`);
  return template.replaceAll("{n}", String(d)).replaceAll("{word}", word);
}

/** The held-out digits (28x28 in [0, 1]), in their fixed order, for evaluation. */
export function testDigits(): DigitSet {
  return loadMnist().test;
}

/**
 * Digit i of `set` as a model image: C * size * size values in [-1, 1] (the gray value in every
 * channel), first moved by `shift` = [dx, dy] pixels of 28 when given. A side below 28 first
 * averages f x f blocks, f = ceil(28 / size), over the centered floor(28 / f) * f pixels (28 -> 14 at
 * size 14..27, 28 -> 9 at 10..13, 28 -> 7 at 7..9); then the digit is centered on a -1 background
 * (T1: 2 pixels each side of 32), any odd pixel going right/down.
 */
export function digitImage(
  set: DigitSet,
  i: number,
  image: { readonly size: number; readonly channels: number },
  shift?: readonly [number, number],
): Float32Array {
  if (!Number.isInteger(i) || i < 0 || i >= set.count) {
    throw new Error(`digitImage: index ${i} of ${set.count}`);
  }
  const src = shift
    ? shiftedDigit(set, i, shift[0], shift[1])
    : set.images.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
  const { factor: f, side, crop, pad } = digitFrame(image);
  const plane = new Float32Array(image.size * image.size).fill(-1);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let sum = 0;
      for (let dy = 0; dy < f; dy++) {
        for (let dx = 0; dx < f; dx++) sum += src[(crop + y * f + dy) * MNIST_SIDE + crop + x * f + dx]!;
      }
      plane[(pad + y) * image.size + pad + x] = (2 * sum) / (f * f) - 1;
    }
  }
  const out = new Float32Array(image.channels * plane.length);
  for (let c = 0; c < image.channels; c++) out.set(plane, c * plane.length);
  return out;
}

/** How `digitImage` places a 28x28 digit in a `size` frame: the mean factor, grid side, crop, pad. */
function digitFrame(image: { readonly size: number }) {
  const factor = Math.max(1, Math.ceil(MNIST_SIDE / image.size));
  const side = Math.floor(MNIST_SIDE / factor);
  const crop = Math.floor((MNIST_SIDE - side * factor) / 2);
  const pad = Math.floor((image.size - side) / 2);
  return { factor, side, crop, pad };
}

/** `digitImage` as a device gather of the loss entry's `images` from table `digits` (28x28 rows). */
export function digitGather(image: { readonly size: number; readonly channels: number }): ImageGather {
  return {
    input: "images",
    table: "digits",
    srcSide: MNIST_SIDE,
    size: image.size,
    channels: image.channels,
    ...digitFrame(image),
    background: -1,
    scale: 2,
    bias: -1,
  };
}

/** What the source reads from the model's config, besides the sequence geometry. */
export type MnistCaptionsConfig = SequenceConfig & { readonly diffusion: { readonly condDropout: number } };

export interface MnistCaptionsOptions {
  /** Fraction of caption-first rows (default 0.8). */
  readonly captionFirst?: number;
  /** Caption templates, picked uniformly (default CAPTION_TEMPLATES; T1: [T1_CAPTION_TEMPLATE]). */
  readonly templates?: readonly string[];
  /**
   * Image-first (captioning) training rows see their digit moved by up to this many 28x28 pixels
   * each way, uniformly (default 0). Only those rows: caption-first rows are what generation learns
   * to draw, and the eval's classifier and held-out digits are centered, so they stay centered.
   * Held-out batches are never shifted.
   */
  readonly shiftImageFirst?: number;
  /** Held-out batches (default: every whole batch of the test split). */
  readonly evalBatches?: number;
}

export interface MnistCaptionsSource extends DataSource {
  readonly evalBatches: number;
  /** The caption templates rows are drawn from; the first is the one to prompt a trained model with. */
  readonly templates: readonly string[];
  batch(step: number, seed: number): LossInputs;
  evalBatch(index: number): LossInputs;
  /** Where step's first example comes from, for run.json: the epoch and its place in the permutation. */
  cursor(step: number): { epoch: number; index: number };
  /** Rows whose caption was truncated, over every batch made so far. */
  readonly truncatedRows: number;
}

/** `dims.batch` rows of `dims.seq` positions (default config.seq) per batch. */
export function mnistCaptions(
  config: MnistCaptionsConfig,
  dims: Readonly<Record<string, number>>,
  opts: MnistCaptionsOptions = {},
): MnistCaptionsSource {
  const batch = dims.batch;
  if (batch === undefined || !Number.isInteger(batch) || batch < 1) {
    throw new Error(`mnistCaptions: dims.batch must be a positive integer, got ${batch}`);
  }
  const cfg: SequenceConfig = { ...config, seq: dims.seq ?? config.seq };
  const captionFirst = opts.captionFirst ?? 0.8;
  const dropout = config.diffusion.condDropout;
  const templates = opts.templates ?? CAPTION_TEMPLATES;
  const shift = opts.shiftImageFirst ?? 0;
  if (!Number.isInteger(shift) || shift < 0 || shift > 8) {
    throw new Error(`mnistCaptions: shiftImageFirst must be an integer 0..8 (pixels of 28), got ${shift}`);
  }
  for (const [name, p] of [["captionFirst", captionFirst], ["diffusion.condDropout", dropout]] as const) {
    if (!(p >= 0 && p <= 1)) throw new Error(`mnistCaptions: ${name} must be in [0, 1], got ${p}`);
  }
  if (templates.length === 0) throw new Error("mnistCaptions: needs at least one caption template");
  const { train, test } = loadMnist();
  const evalBatches = opts.evalBatches ?? Math.floor(test.count / batch);
  if (!Number.isInteger(evalBatches) || evalBatches < 0 || evalBatches * batch > test.count) {
    throw new Error(
      `mnistCaptions: ${evalBatches} eval batches of ${batch} exceed ${test.count} test digits`,
    );
  }
  const epochs = new EpochPermutations(train.count);
  let truncatedRows = 0;

  /**
   * Row choices from `random`; `drop` and `moveBy` 0 for eval. Offsets are drawn only when
   * `moveBy` > 0, so runs without the shift keep the data stream they always had. The host batch
   * and the device batch are both made from these, so they are the same rows.
   */
  const choose = (
    set: DigitSet,
    indices: readonly number[],
    random: () => number,
    drop: number,
    moveBy: number,
  ): RowChoice[] => {
    const offset = () => Math.floor(random() * (2 * moveBy + 1)) - moveBy;
    return indices.map((i): RowChoice => {
      const order = random() < captionFirst ? "caption-first" : "image-first";
      const dropped = random() < drop && order === "caption-first";
      const template = templates[Math.floor(random() * templates.length)]!;
      const caption = dropped ? undefined : digitCaption(set.labels[i]!, template);
      const moved = order === "image-first" && moveBy > 0 ? [offset(), offset()] as const : undefined;
      return { index: i, caption, order, shift: moved };
    });
  };
  const rows = (set: DigitSet, choices: readonly RowChoice[]) => {
    const examples = choices.map((c): Example => ({
      caption: c.caption,
      images: [digitImage(set, c.index, cfg.image, c.shift)],
      order: c.order,
    }));
    const { inputs, truncated } = assembleBatch(examples, cfg);
    truncatedRows += truncated;
    return inputs;
  };
  const trainChoices = (step: number, seed: number) => {
    checkStep(step);
    const indices = Array.from({ length: batch }, (_, i) => epochs.at(seed, step * batch + i));
    return choose(train, indices, uniform(mix(seed, step, 1)), dropout, shift);
  };
  const N = cfg.image.imagesPerRow;
  const device: DeviceData = {
    tables: { digits: train.images as Float32Array<ArrayBuffer> },
    gathers: [digitGather(cfg.image)],
    indexedBatch(step, seed) {
      const choices = trainChoices(step, seed);
      const { inputs, truncated } = assembleLayout(
        choices.map((c) => ({ caption: c.caption, imageCount: 1, order: c.order })),
        cfg,
      );
      truncatedRows += truncated;
      // One digit in each row's first image slot; the other slots are absent (-1: zeros).
      const images = new Int32Array(batch * N * 3);
      for (let r = 0; r < batch * N; r++) images[3 * r] = -1;
      choices.forEach((c, b) => images.set([c.index, c.shift?.[0] ?? 0, c.shift?.[1] ?? 0], 3 * b * N));
      return { batch: inputs, rows: { images } };
    },
  };

  return {
    tokensPerBatch: batch * cfg.seq,
    evalBatches,
    templates,
    imageView: "digits",
    get truncatedRows() {
      return truncatedRows;
    },
    device,
    batch(step, seed) {
      return rows(train, trainChoices(step, seed));
    },
    // Test digits in order; order and template from a generator fixed per index, whatever the run's seed.
    evalBatch(index) {
      if (!Number.isInteger(index) || index < 0 || index >= evalBatches) {
        throw new Error(`mnistCaptions: eval batch ${index} is not in 0..${evalBatches - 1}`);
      }
      const indices = Array.from({ length: batch }, (_, i) => index * batch + i);
      return rows(test, choose(test, indices, uniform(mix(0, index, 2)), 0, 0));
    },
    cursor(step) {
      checkStep(step);
      const g = step * batch;
      return { epoch: Math.floor(g / train.count), index: g % train.count };
    },
    describe: () =>
      `MNIST captions: ${train.count} train / ${test.count} test digits, ` +
      `${Math.round(captionFirst * 100)}% caption-first, ${Math.round(dropout * 100)}% condition dropout, ` +
      (shift > 0 ? `image-first digits shifted up to ${shift}px, ` : "") +
      `${cfg.image.size}x${cfg.image.size} images`,
  };
}

/** One row's draw: the digit, its caption (undefined: dropped), the order, the shift of an image-first digit. */
interface RowChoice {
  readonly index: number;
  readonly caption: string | undefined;
  readonly order: CaptionOrder;
  readonly shift: readonly [number, number] | undefined;
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`mnistCaptions: step must be an integer >= 0, got ${step}`);
  }
}

/** One Fisher-Yates permutation of 0..n-1 per (seed, epoch); the last two are kept. */
class EpochPermutations {
  readonly #cache = new Map<string, Int32Array>();
  constructor(readonly n: number) {}

  /** The example at run-wide position g. */
  at(seed: number, g: number): number {
    const epoch = Math.floor(g / this.n);
    const key = `${seed}/${epoch}`;
    let perm = this.#cache.get(key);
    if (!perm) {
      perm = Int32Array.from({ length: this.n }, (_, i) => i);
      const random = uniform(mix(seed, epoch, 0));
      for (let i = this.n - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      if (this.#cache.size >= 2) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, perm);
    }
    return perm[g % this.n]!;
  }
}
