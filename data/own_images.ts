/**
 * A user's captioned images as Transfusion training rows (spec/transfusion/sequence.ts), the way
 * data/mnist_captions.ts makes them from digits: caption-first (text -> image) with probability
 * `captionFirst`, image-first (captioning) otherwise, and a caption-first row's caption dropped with
 * probability `config.diffusion.condDropout` (classifier-free guidance).
 *
 * Every image is read, decoded, converted to the spec's channels and resized when the source is
 * made, so a bad file stops the run before its first step, and a step costs no decoding. Batches
 * are pure functions of (seed, step): example g = step * batch + i is position g mod n of the
 * permutation of epoch floor(g / n); the row's order and dropout come from a generator seeded by
 * (seed, step). The held-out split is fixed by the data set alone (data/epoch_order.ts).
 *
 * @example In a spec: `data: imageFolder(new URL("./my_pictures/", import.meta.url))`; from the
 * command line: `deno task train examples/own_images.ts --data images:./my_pictures`.
 */
import type { DataSource } from "../spec/data.ts";
import {
  assembleBatch,
  type CaptionOrder,
  type Example,
  type LossInputs,
  type SequenceConfig,
  sequenceGeometry,
} from "../spec/transfusion/sequence.ts";
import { checkStep, EpochOrder, splitHeldOut } from "./epoch_order.ts";
import { DataError, DataFileError, filePath } from "./data_files.ts";
import { readPicture, withChannels } from "./image_files.ts";
import { type CaptionedFile, type ImageListing, listImages } from "./image_listing.ts";
import { modelImage } from "./image_resize.ts";
import { mix, uniform } from "./seeded_random.ts";

/** What the source reads from the model's config, besides the sequence geometry. */
export type ImageCaptionsConfig = SequenceConfig & { readonly diffusion: { readonly condDropout: number } };

export interface ImageCaptionsOptions {
  /** Fraction of caption-first rows (default 0.8, the paper's). */
  readonly captionFirst?: number;
  /** Fraction of the examples held out for evaluation (default 0.1; at least one when there are two). */
  readonly heldOut?: number;
  /**
   * Refuse an image whose own channels (gray or colour) differ from the spec's instead of
   * converting it (default false: gray is copied into R, G, B; colour becomes Rec. 601 luma).
   */
  readonly strictChannels?: boolean;
}

export interface ImageCaptionsSource extends DataSource {
  readonly evalBatches: number;
  batch(step: number, seed: number): LossInputs;
  evalBatch(index: number): LossInputs;
  /** The examples in the order of the data set, each with its split. */
  readonly examples: readonly OwnImage[];
  /** Rows whose caption was truncated, over every batch made so far. */
  readonly truncatedRows: number;
}

/** One example, decoded: C*size*size values in [-1, 1]. */
export interface OwnImage {
  readonly file: string;
  readonly caption: string;
  readonly image: Float32Array;
  readonly split: "train" | "held-out";
}

/** A spec's `data:` for a folder of images with .txt captions (see data/image_listing.ts). */
export function imageFolder(
  folder: string | URL,
  opts: ImageCaptionsOptions = {},
): (config: ImageCaptionsConfig, dims: Readonly<Record<string, number>>) => ImageCaptionsSource {
  return (config, dims) => imageCaptions(config, dims, filePath(folder), opts);
}

/** A spec's `data:` for a JSONL file of {"image": path, "caption": text} lines. */
export function imageJsonl(
  file: string | URL,
  opts: ImageCaptionsOptions = {},
): (config: ImageCaptionsConfig, dims: Readonly<Record<string, number>>) => ImageCaptionsSource {
  return (config, dims) => imageCaptions(config, dims, filePath(file), opts);
}

/** `dims.batch` rows of `dims.seq` positions (default config.seq) from the data set at `location`. */
export function imageCaptions(
  config: ImageCaptionsConfig,
  dims: Readonly<Record<string, number>>,
  location: string,
  opts: ImageCaptionsOptions = {},
): ImageCaptionsSource {
  const who = `images ${location}`;
  const batch = dims.batch;
  if (batch === undefined || !Number.isInteger(batch) || batch < 1) {
    throw new DataError(`${who}: dims.batch must be a positive integer, got ${batch}`);
  }
  const shaped = config as Partial<ImageCaptionsConfig>;
  if (!shaped.text || !shaped.image || !shaped.diffusion) {
    throw new DataError(
      `${who}: captioned images train a Transfusion spec (a config with text, image and diffusion); ` +
        `this spec's config has ${Object.keys(config ?? {}).join(", ") || "no keys"}`,
    );
  }
  const cfg: SequenceConfig = { ...config, seq: dims.seq ?? config.seq };
  const g = sequenceGeometry(cfg);
  const captionFirst = opts.captionFirst ?? 0.8;
  const dropout = config.diffusion.condDropout;
  for (const [name, p] of [["captionFirst", captionFirst], ["diffusion.condDropout", dropout]] as const) {
    if (!(p >= 0 && p <= 1)) throw new DataError(`${who}: ${name} must be in [0, 1], got ${p}`);
  }
  const { channels, size } = cfg.image;
  if (channels !== 1 && channels !== 3) {
    throw new DataError(
      `${who}: the spec's image.channels is ${channels}; image files give gray (1) or RGB (3)`,
    );
  }
  const listing = listImages(location);
  const split = splitHeldOut(listing.files.length, opts.heldOut ?? 0.1, 0, who);
  const held = new Set(split.heldOut);
  const converted: string[] = [];
  const examples = listing.files.map((f, i): OwnImage => {
    const picture = readPicture(f.image);
    if (picture.channels !== channels) {
      if (opts.strictChannels) {
        throw new DataFileError(
          f.image,
          `has ${picture.channels} channel${picture.channels === 1 ? "" : "s"} (${picture.stored}), ` +
            `the spec's image.channels is ${channels} (strictChannels refuses converting it)`,
        );
      }
      converted.push(f.image);
    }
    const image = modelImage(withChannels(picture, channels), size);
    return { file: f.image, caption: f.caption, image, split: held.has(i) ? "held-out" : "train" };
  });
  const train = split.train.map((i) => examples[i]!);
  const test = split.heldOut.map((i) => examples[i]!);
  if (train.length === 0) throw new DataFileError(location, "has no training examples after the split");
  const evalBatches = Math.ceil(test.length / batch);
  const order = new EpochOrder(train.length, 0);
  const long = captionReport(listing.files, g.captionLength, g.tokenizer.encode.bind(g.tokenizer));
  let truncatedRows = 0;

  const rows = (
    picked: readonly OwnImage[],
    random: () => number,
    drop: number,
  ): LossInputs => {
    const made = picked.map((x): Example => {
      const order: CaptionOrder = random() < captionFirst ? "caption-first" : "image-first";
      const dropped = random() < drop && order === "caption-first";
      return { caption: dropped ? undefined : x.caption, images: [x.image], order };
    });
    const { inputs, truncated } = assembleBatch(made, cfg);
    truncatedRows += truncated;
    return inputs;
  };

  return {
    tokensPerBatch: batch * cfg.seq,
    evalBatches,
    examples,
    get truncatedRows() {
      return truncatedRows;
    },
    batch(step, seed) {
      checkStep(who, step);
      const picked = Array.from({ length: batch }, (_, i) => train[order.at(seed, step * batch + i)]!);
      return rows(picked, uniform(mix(seed, step, 1)), dropout);
    },
    // The held-out examples in order (the last batch wraps around to the first), no dropout; the
    // order of each row is drawn from a generator fixed per batch, whatever the run's seed.
    evalBatch(index) {
      if (!Number.isInteger(index) || index < 0 || index >= evalBatches) {
        throw new Error(`${who}: eval batch ${index} is not in 0..${evalBatches - 1}`);
      }
      const picked = Array.from({ length: batch }, (_, i) => test[(index * batch + i) % test.length]!);
      return rows(picked, uniform(mix(0, index, 2)), 0);
    },
    describe: () => describeImages(listing, train.length, test.length, converted.length, long, cfg),
  };
}

interface CaptionReport {
  readonly cut: number;
  readonly longest: number;
}

/** Captions longer than the caption slot (captionLength bytes), counted once per data set. */
function captionReport(
  files: readonly CaptionedFile[],
  captionLength: number,
  encode: (text: string) => number[],
): CaptionReport {
  const lengths = files.map((f) => encode(f.caption).length);
  return { cut: lengths.filter((n) => n > captionLength).length, longest: Math.max(...lengths) };
}

function describeImages(
  listing: ImageListing,
  train: number,
  heldOut: number,
  converted: number,
  long: CaptionReport,
  cfg: SequenceConfig,
): string {
  const { size, channels } = cfg.image;
  const n = listing.files.length;
  const parts = [
    `own images (${listing.kind} ${listing.location}): ${train} train / ${heldOut} held-out`,
    `${size}x${size} ${channels === 1 ? "gray" : "RGB"}` +
    (converted > 0 ? ` (${converted} of ${n} converted from ${channels === 1 ? "RGB" : "gray"})` : ""),
    long.cut > 0
      ? `${long.cut} of ${n} captions cut to captionLength ${cfg.text.captionLength} ` +
        `(longest ${long.longest} bytes: raise text.captionLength)`
      : `no caption cut (longest ${long.longest} of ${cfg.text.captionLength} bytes)`,
  ];
  const { skipped } = listing;
  if (skipped.length > 0) {
    const names = skipped.slice(0, 3).map((f) => f.slice(f.lastIndexOf("/") + 1)).join(", ");
    parts.push(`${skipped.length} other files skipped (${names}${skipped.length > 3 ? ", ..." : ""})`);
  }
  return parts.join(", ");
}
