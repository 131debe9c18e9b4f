/**
 * Prompts of the interleaved loop and the rows they start: BOS, then text (UTF-8 bytes), raw ids and
 * clean images (each BOI, P patches, EOI). A prompt ending in BOI starts with an image.
 */
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { captionIds, sequenceGeometry } from "../../spec/transfusion/sequence.ts";
import { SPECIAL } from "../tokenizer.ts";
import { SamplingError } from "./prediction.ts";
import type { Row, RowGeometry, RowImage } from "./rows.ts";

/** Text (UTF-8 bytes), raw token ids, or a clean image (C*H*W in [-1, 1]; laid out as BOI patches EOI). */
export type PromptPart =
  | { readonly text: string }
  | { readonly tokens: readonly number[] }
  | { readonly image: Float32Array };

export interface Prompt {
  /** After BOS. A prompt ending in BOI starts with an image (text-to-image). */
  readonly parts: readonly PromptPart[];
  /** The prompt's random streams (0..IMAGE_STRIDE - 1); default its index in the request. */
  readonly id?: number;
}

/** Caption-first text-to-image, as training lays it out: the caption slot (captionLength), then BOI. */
export function captionPrompt(caption: string, config: TransfusionConfig, id?: number): Prompt {
  const { ids } = captionIds(caption, sequenceGeometry(config));
  return { parts: [{ tokens: [...ids, SPECIAL.boi] }], ...(id === undefined ? {} : { id }) };
}

/**
 * Refuses a caption prompt longer than the model's caption slot, which `captionPrompt` would cut
 * (training cuts long captions the same way, but a person asking for an image should know that the
 * end of the prompt was never seen). The slot counts the tokenizer's ids: UTF-8 bytes for the byte
 * tokenizer, so non-ASCII text is longer than it looks (said when it matters); a BPE's tokens.
 */
export function checkCaptionFits(caption: string, config: TransfusionConfig): void {
  const tokenizer = sequenceGeometry(config).tokenizer;
  const bytes = tokenizer.encode(caption).length;
  const slot = config.text.captionLength;
  if (bytes <= slot) return;
  if (tokenizer.config.kind !== "byte") {
    throw new SamplingError(
      `the prompt ${JSON.stringify(caption)} is ${bytes} tokens of this model's ${tokenizer.config.kind} ` +
        `tokenizer, but its caption slot holds ${slot} (text.captionLength); shorten it`,
    );
  }
  const shown = caption.length > 40
    ? `${JSON.stringify(caption.slice(0, 40)).slice(0, -1)}..."`
    : JSON.stringify(caption);
  // deno-lint-ignore no-control-regex
  const wide = /[^\u0000-\u007f]/.test(caption)
    ? ` (${caption.length} characters; each non-ASCII one takes 2 to 4 bytes)`
    : "";
  throw new SamplingError(
    `the prompt ${shown} is ${bytes} bytes of UTF-8${wide}, but this model's caption slot holds ` +
      `${slot} (text.captionLength); shorten it to ${slot} bytes or fewer`,
  );
}

/** Image-first captioning: a clean image, then the model's text. */
export function imagePrompt(image: Float32Array, id?: number): Prompt {
  return { parts: [{ image }], ...(id === undefined ? {} : { id }) };
}

/** BOS, then the prompt's parts; each image as BOI, P patches, EOI. */
export function promptRow(prompt: Prompt, g: RowGeometry): Row {
  const tokens: number[] = [SPECIAL.bos];
  const images: RowImage[] = [];
  for (const part of prompt.parts) {
    if ("text" in part) tokens.push(...g.tokenizer.encode(part.text));
    else if ("tokens" in part) tokens.push(...part.tokens);
    else {
      if (part.image.length !== g.pixels) {
        throw new RangeError(`a prompt image has ${part.image.length} values, expected C*H*W = ${g.pixels}`);
      }
      tokens.push(SPECIAL.boi);
      images.push({ start: tokens.length, pixels: part.image });
      tokens.push(...new Array<number>(g.P).fill(0), SPECIAL.eoi);
    }
  }
  const bad = tokens.find((id) => !Number.isInteger(id) || id < 0 || id >= g.vocab);
  if (bad !== undefined) {
    throw new RangeError(`prompt token ${bad} is outside the vocabulary 0..${g.vocab - 1}`);
  }
  if (tokens.length > g.seq) {
    throw new RangeError(`a prompt of ${tokens.length} positions does not fit seq ${g.seq}`);
  }
  if (images.length > g.N) {
    throw new RangeError(`a prompt with ${images.length} images exceeds the ${g.N} slots`);
  }
  const row = { tokens, images };
  if (
    row.tokens[row.tokens.length - 1] === SPECIAL.boi &&
    !roomForImage({ tokens: tokens.slice(0, -1), images }, g)
  ) {
    throw new RangeError(`a prompt ending in BOI leaves no room for its image (seq ${g.seq})`);
  }
  return row;
}

/** Whether BOI appended to `row` can be followed by an image and its EOI. */
export function roomForImage(row: Row, g: RowGeometry): boolean {
  return row.images.length < g.N && row.tokens.length + 1 + g.P + 1 <= g.seq;
}
