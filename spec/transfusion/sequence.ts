/**
 * Host-side sequence assembly for Transfusion rows: captions and images in, the typed arrays of the
 * model's `loss`, `denoise` and `logits` entries out. Used by the data pipeline and the sampler, so
 * a sampled row is laid out exactly like a training row. Imports no tracer code.
 *
 * One row is one document (doc 0), then padding (doc -1) up to `seq`. Every row is an instance of a
 * row template (rows.ts); the presets here are
 * - caption-first: BOS, caption (captionLength), then per image BOI, patches, EOI     (T1)
 * - image-first:   BOS, then per image BOI, patches, EOI, then caption (captionLength)
 * - unconditional (caption undefined, either order): BOS, then per image BOI, patches, EOI
 * and a spec that declares its own template (config `row`) gets its rows from `assembleTemplateBatch`.
 * The caption slot holds the caption's bytes, then EOS, then the tokenizer's pad id (EOS at vocab
 * 260, PAD at vocab 261), cut to captionLength. A caption whose bytes do not all fit is truncated
 * and counted; only the terminating EOS may be dropped without counting.
 * Padding positions hold the pad id. Patches hold token 0 (ignored by the model).
 */
import type { LayoutFields } from "../../compiler/ir/mask.ts";
import { layoutFeed, type LayoutInputName } from "../layout_builder.ts";
import {
  fitLength,
  SPECIAL,
  textTokenizer,
  type TextTokenizerConfig,
  type Tokenizer,
} from "../../runtime/tokenizer.ts";
import {
  captionFirstRow,
  describeTemplate,
  imageFirstRow,
  layOutRows,
  type RowFill,
  type RowTemplate,
  type RowTexts,
  templateImages,
  templateLength,
} from "./rows.ts";

/**
 * What assembly reads from a Transfusion config (the model's resolved config is assignable to it).
 * text.vocab: 260 (no PAD; captions padded with EOS, as in T1) or 261 (with PAD).
 * image.size: side of the square image after padding; patch: side of a square patch;
 * imagesPerRow: N, the image slots of a row; seq: positions per row; row: the spec's own row
 * template (absent: caption-first rows).
 */
export interface SequenceConfig {
  readonly text: TextTokenizerConfig & { readonly captionLength: number };
  readonly row?: RowTemplate | undefined;
  readonly image: {
    readonly size: number;
    readonly channels: number;
    readonly patch: number;
    readonly imagesPerRow: number;
  };
  readonly seq: number;
}

export type CaptionOrder = "caption-first" | "image-first";

/** One training example. Images are C*H*W each, values in [-1, 1], H = W = image.size; at most N. */
export interface Example {
  /** undefined: the condition was dropped (classifier-free guidance), the row has no caption slot. */
  readonly caption?: string | undefined;
  readonly images: readonly Float32Array[];
  readonly order: CaptionOrder;
}

/** One assembled row: tokens and fields [seq], patchPos [N, P], imageValid and imageFirst [N]. */
export interface AssembledRow {
  readonly tokens: Int32Array;
  readonly fields: LayoutFields;
  readonly patchPos: Int32Array;
  readonly imageValid: Float32Array;
  readonly imageFirst: Float32Array;
  /** Caption bytes cut off (0: the caption fit). */
  readonly truncated: number;
}

type LayoutArrays = Record<LayoutInputName, Int32Array>;
/** Inputs of the `loss` entry (all but the automatic seed); images [B, N, C, H, W], patch_pos [B, N, P]. */
export type LossInputs = LayoutArrays & {
  tokens: Int32Array;
  images: Float32Array;
  patch_pos: Int32Array;
  image_valid: Float32Array;
  image_first: Float32Array;
};
/** Inputs of the `denoise` entry; x_t [B, N, C, H, W], t [B, N]. */
export type DenoiseInputs = LayoutArrays & {
  tokens: Int32Array;
  x_t: Float32Array;
  t: Float32Array;
  patch_pos: Int32Array;
  image_valid: Float32Array;
};
/** Inputs of the `logits` entry (clean images). */
export type LogitsInputs = LayoutArrays & {
  tokens: Int32Array;
  images: Float32Array;
  patch_pos: Int32Array;
  image_valid: Float32Array;
};

/** The sizes assembly works with, checked once per call. */
export interface SequenceGeometry {
  readonly seq: number;
  readonly captionLength: number;
  /** Image slots per row. */
  readonly N: number;
  /** Patches per image, grid * grid. */
  readonly P: number;
  readonly grid: number;
  /** Values per image, C * size * size. */
  readonly pixels: number;
  readonly tokenizer: Tokenizer;
  /** The row the spec trains: its `row` template, else caption-first with N images. */
  readonly template: RowTemplate;
}

export function sequenceGeometry(cfg: SequenceConfig): SequenceGeometry {
  const { text, image, seq } = cfg;
  const bad = (what: string) => {
    const sizes = { vocab: text.vocab, captionLength: text.captionLength }; // not a BPE's merges
    throw new Error(`sequence: ${what} (config ${JSON.stringify({ text: sizes, image, seq })})`);
  };
  // Only the sizes this file reads; the model's config carries other (non-numeric) image options.
  const sizes = {
    captionLength: text.captionLength,
    size: image.size,
    channels: image.channels,
    patch: image.patch,
    imagesPerRow: image.imagesPerRow,
    seq,
  };
  for (const [k, v] of Object.entries(sizes)) if (!Number.isInteger(v) || v < 1) bad(`${k} must be >= 1`);
  if (image.size % image.patch !== 0) {
    bad(`image.size ${image.size} is not a multiple of patch ${image.patch}`);
  }
  const grid = image.size / image.patch;
  const [N, P] = [image.imagesPerRow, grid * grid];
  if (cfg.row) {
    const needed = templateLength(cfg.row, P);
    const shown = describeTemplate(cfg.row);
    if (needed > seq) bad(`the row template ${shown} needs ${needed} positions > seq`);
    const images = templateImages(cfg.row).length;
    if (images > N) bad(`the row template ${shown} has ${images} images > imagesPerRow ${N}`);
  } else {
    const needed = 1 + text.captionLength + N * (P + 2);
    if (needed > seq) bad(`a full row needs 1 + ${text.captionLength} + ${N} * (${P} + 2) = ${needed} > seq`);
  }
  const tokenizer = textTokenizer(text, "sequence");
  const pixels = image.channels * image.size * image.size;
  const template = cfg.row ?? captionFirstRow(text.captionLength, N);
  return { seq, captionLength: text.captionLength, N, P, grid, pixels, tokenizer, template };
}

/** The caption slot's ids (captionLength of them) and how many caption bytes were cut off. */
export function captionIds(caption: string, g: SequenceGeometry): { ids: number[]; truncated: number } {
  const bytes = g.tokenizer.encode(caption);
  const ids = fitLength(g.tokenizer, [...bytes, SPECIAL.eos], g.captionLength);
  return { ids, truncated: Math.max(0, bytes.length - g.captionLength) };
}

/** A caption-first, image-first or unconditional row as an instance of its row template. */
function presetFill(
  caption: string | readonly number[] | undefined,
  order: CaptionOrder,
  imageCount: number,
  g: SequenceGeometry,
  b: number,
): RowFill {
  if (!Number.isInteger(imageCount) || imageCount < 0 || imageCount > g.N) {
    throw new Error(`sequence: row ${b} has ${imageCount} images; expected 0..${g.N} (imagesPerRow)`);
  }
  const template = order === "caption-first"
    ? captionFirstRow(g.captionLength, imageCount)
    : imageFirstRow(g.captionLength, imageCount);
  return { template, texts: { caption: caption ?? null } };
}

/** [B, N, C, H, W] with row b's images in its first slots, zeros elsewhere. */
function packImages(rows: readonly (readonly Float32Array[])[], g: SequenceGeometry): Float32Array {
  const out = new Float32Array(rows.length * g.N * g.pixels);
  rows.forEach((images, b) => {
    images.forEach((img, n) => {
      if (img.length !== g.pixels) {
        throw new Error(
          `sequence: row ${b} image ${n} has ${img.length} values, expected C*H*W = ${g.pixels}`,
        );
      }
      out.set(img, (b * g.N + n) * g.pixels);
    });
  });
  return out;
}

function checkRows(what: string, B: number): void {
  if (!Number.isInteger(B) || B < 1) throw new Error(`sequence: ${what} needs at least one row, got ${B}`);
}

/** One example as a row; `fields` are [seq] each. */
export function assembleRow(example: Example, cfg: SequenceConfig): AssembledRow {
  const g = sequenceGeometry(cfg);
  const fill = presetFill(example.caption, example.order, example.images.length, g, 0);
  const { tokens, fields, patchPos, imageValid, imageFirst, truncated } = layOutRows([fill], g);
  packImages([example.images], g); // checks the image sizes
  return { tokens, fields, patchPos, imageValid, imageFirst, truncated: truncated[0]! };
}

/** Inputs of the `loss` entry for `examples` (B = examples.length); `truncated` counts rows cut. */
export function assembleBatch(
  examples: readonly Example[],
  cfg: SequenceConfig,
): { inputs: LossInputs; truncated: number } {
  const g = sequenceGeometry(cfg);
  const { inputs, truncated } = assembleLayout(
    examples.map((e) => ({ caption: e.caption, imageCount: e.images.length, order: e.order })),
    cfg,
  );
  return { inputs: { ...inputs, images: packImages(examples.map((e) => e.images), g) }, truncated };
}

/** An example without its pixels: what the layout needs (a device gather supplies the images). */
export interface ExampleShape {
  readonly caption?: string | undefined;
  readonly imageCount: number;
  readonly order: CaptionOrder;
}

/** Inputs of the `loss` entry but the images: tokens, layout, patch positions, image flags. */
export function assembleLayout(
  examples: readonly ExampleShape[],
  cfg: SequenceConfig,
): { inputs: Omit<LossInputs, "images">; truncated: number } {
  checkRows("assembleBatch", examples.length);
  const g = sequenceGeometry(cfg);
  const rows = layOutRows(examples.map((e, b) => presetFill(e.caption, e.order, e.imageCount, g, b)), g);
  const inputs = {
    tokens: rows.tokens,
    ...layoutFeed(rows.fields),
    patch_pos: rows.patchPos,
    image_valid: rows.imageValid,
    image_first: rows.imageFirst,
  };
  return { inputs, truncated: rows.truncated.filter((n) => n > 0).length };
}

/**
 * Inputs of the `denoise` entry: caption-first rows (unconditional where the caption is undefined),
 * each with its first `imageCount` (default N) image slots holding x_t [B, N, C, H, W] at times
 * t [B, N]. x_t and t are passed through as given; `truncated` counts rows whose caption was cut.
 */
export function promptBatch(
  captions: readonly (string | undefined)[],
  xt: Float32Array,
  t: Float32Array,
  cfg: SequenceConfig,
  imageCount?: number,
): { inputs: DenoiseInputs; truncated: number } {
  const B = captions.length;
  checkRows("promptBatch", B);
  const g = sequenceGeometry(cfg);
  if (xt.length !== B * g.N * g.pixels) {
    throw new Error(`promptBatch: x_t has ${xt.length} values, expected B*N*C*H*W = ${B * g.N * g.pixels}`);
  }
  if (t.length !== B * g.N) {
    throw new Error(`promptBatch: t has ${t.length} values, expected B*N = ${B * g.N}`);
  }
  const rows = layOutRows(captions.map((c, b) => presetFill(c, "caption-first", imageCount ?? g.N, g, b)), g);
  const inputs: DenoiseInputs = {
    tokens: rows.tokens,
    ...layoutFeed(rows.fields),
    x_t: xt,
    t,
    patch_pos: rows.patchPos,
    image_valid: rows.imageValid,
  };
  return { inputs, truncated: rows.truncated.filter((n) => n > 0).length };
}

/**
 * Inputs of the `logits` entry for captioning: image-first rows (one clean image each, C*H*W in
 * [-1, 1]) whose caption slot holds the ids generated so far, then the pad id. `readAt[b]` is the
 * position whose logits predict row b's next token: EOI's position plus the number generated.
 */
export function captionBatch(
  images: readonly Float32Array[],
  generated: readonly (readonly number[])[],
  cfg: SequenceConfig,
): { inputs: LogitsInputs; readAt: Int32Array } {
  const B = images.length;
  checkRows("captionBatch", B);
  if (generated.length !== B) {
    throw new Error(`captionBatch: ${generated.length} generated prefixes for ${B} images`);
  }
  const g = sequenceGeometry(cfg);
  const fills = generated.map((ids, b): RowFill => {
    if (ids.length > g.captionLength) {
      throw new Error(`captionBatch: row ${b} has ${ids.length} generated ids, at most ${g.captionLength}`);
    }
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= cfg.text.vocab);
    if (bad !== undefined) {
      throw new Error(`captionBatch: row ${b} has id ${bad} outside 0..${cfg.text.vocab - 1}`);
    }
    return presetFill(ids, "image-first", 1, g, b);
  });
  const rows = layOutRows(fills, g);
  const eoi = 1 + g.P + 1;
  const inputs: LogitsInputs = {
    tokens: rows.tokens,
    ...layoutFeed(rows.fields),
    images: packImages(images.map((img) => [img]), g),
    patch_pos: rows.patchPos,
    image_valid: rows.imageValid,
  };
  return { inputs, readAt: Int32Array.from(generated, (ids) => eoi + ids.length) };
}

/** One row of a row template: its text slots by name (null: left out) and its images, in order. */
export interface TemplateExample {
  readonly texts: RowTexts;
  /** C*H*W each in [-1, 1], one per image span of the template. */
  readonly images: readonly Float32Array[];
}

/**
 * Inputs of the `loss` entry for rows of `template` (default: the config's `row`, else caption-first
 * with N images); `truncated` counts rows with a text cut.
 */
export function assembleTemplateBatch(
  examples: readonly TemplateExample[],
  cfg: SequenceConfig,
  template?: RowTemplate,
): { inputs: LossInputs; truncated: number } {
  checkRows("assembleTemplateBatch", examples.length);
  const g = sequenceGeometry(cfg);
  const t = template ?? g.template;
  const wanted = templateImages(t).length;
  examples.forEach((e, b) => {
    if (e.images.length !== wanted) {
      throw new Error(
        `assembleTemplateBatch: row ${b} has ${e.images.length} images; the template ` +
          `${describeTemplate(t)} has ${wanted}`,
      );
    }
  });
  const rows = layOutRows(examples.map((e): RowFill => ({ template: t, texts: e.texts })), g);
  const inputs: LossInputs = {
    tokens: rows.tokens,
    ...layoutFeed(rows.fields),
    images: packImages(examples.map((e) => e.images), g),
    patch_pos: rows.patchPos,
    image_valid: rows.imageValid,
    image_first: rows.imageFirst,
  };
  return { inputs, truncated: rows.truncated.filter((n) => n > 0).length };
}
