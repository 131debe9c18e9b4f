/**
 * Generation that follows a row template (spec/transfusion/rows.ts): the row is laid out as in
 * training, BOS, then each span in order. A text slot given a text is written in as training writes
 * it (bytes, EOS, padding to the slot's length); a text slot left open is written by the model, one
 * sampled token at a time, and once it samples EOS the rest of the slot is padding (what training
 * rows hold there); an image is BOI, drawn by the diffusion sampler (the interleaved loop's
 * `drawImages`: guidance twins, commit pass, EOI). Rows run together, each at its own step; a row's
 * randomness depends only on its id, so rows come out the same alone or together.
 *
 * Guidance's unconditional twin is BOS BOI for every image (the dropped condition of caption-first
 * training); it does not see the row's earlier images.
 */
import { describeTemplate, type RowTemplate, slotIds } from "../../spec/transfusion/rows.ts";
import { SPECIAL, type Tokenizer } from "../tokenizer.ts";
import { drawImages, type GrowingRow, IMAGE_STRIDE, type ImageSampling } from "./interleaved.ts";
import { SamplingError } from "./prediction.ts";
import type { SequenceModel } from "./sequence_model.ts";
import { checkTextSampling, sampleToken, type TextSampling, textUniform } from "./text_sampling.ts";

/** One step of a followed row. */
export type RowStep =
  /** Ids written in as given (BOS; a text slot given its text). */
  | { readonly kind: "tokens"; readonly name?: string; readonly ids: readonly number[] }
  /** A text slot of `length` the model writes. */
  | { readonly kind: "write"; readonly name: string; readonly length: number }
  /** BOI, an image drawn (or the `pixels` given: C*H*W in [-1, 1], clean), EOI. */
  | { readonly kind: "image"; readonly name: string; readonly pixels?: Float32Array };

/**
 * The steps of one row of `template`: BOS, then its spans; a text slot named in `given` holds that
 * text and an image named there those pixels; every other text slot is written by the model and
 * every other image drawn.
 */
export function templateSteps(
  template: RowTemplate,
  given: Readonly<Record<string, string | Float32Array>>,
  tokenizer: Tokenizer,
): RowStep[] {
  const names = new Set(template.spans.map((s) => s.name));
  const unknown = Object.keys(given).filter((k) => !names.has(k));
  if (unknown.length > 0) {
    throw new SamplingError(
      `the row template ${describeTemplate(template)} has no text slot ${
        unknown.map((k) => `"${k}"`).join(", ")
      }`,
    );
  }
  const steps: RowStep[] = [{ kind: "tokens", ids: [SPECIAL.bos] }];
  for (const s of template.spans) {
    const value = given[s.name];
    if (s.kind === "image") {
      if (typeof value === "string") {
        throw new SamplingError(`slot "${s.name}" of ${describeTemplate(template)} is an image, not text`);
      }
      steps.push({ kind: "image", name: s.name, ...(value ? { pixels: value } : {}) });
      continue;
    }
    if (value instanceof Float32Array) {
      throw new SamplingError(`slot "${s.name}" of ${describeTemplate(template)} is text, not an image`);
    }
    if (value === undefined) {
      steps.push({ kind: "write", name: s.name, length: s.length });
      continue;
    }
    const { ids, truncated } = slotIds(value, s.length, tokenizer);
    if (truncated > 0) {
      throw new SamplingError(
        `the text ${JSON.stringify(value)} for slot "${s.name}" is ${tokenizer.encode(value).length} ` +
          `tokens (UTF-8 bytes with the byte tokenizer); the slot holds ${s.length} (shorten it)`,
      );
    }
    steps.push({ kind: "tokens", name: s.name, ids });
  }
  return steps;
}

export interface FollowRequest {
  readonly rows: readonly { readonly steps: readonly RowStep[]; readonly id?: number }[];
  readonly seed: number;
  /** Default greedy. */
  readonly text?: TextSampling;
  readonly image: ImageSampling;
}

/** A span of a followed row, as given or as generated. */
export type FollowedSpan =
  | {
    readonly kind: "text";
    readonly name: string;
    /** The slot's text up to its EOS (special tokens left out). */
    readonly text: string;
    /** The slot's ids, padding included. */
    readonly ids: readonly number[];
    /** Whether the model wrote it (false: it was given). */
    readonly written: boolean;
  }
  | {
    readonly kind: "image";
    readonly name: string;
    readonly pixels: Float32Array;
    /** Whether the model drew it (false: it was given). */
    readonly drawn: boolean;
  };

interface Following extends GrowingRow {
  readonly steps: readonly RowStep[];
  /** The step being done. */
  at: number;
  /** Ids of the text slot being written. */
  slot: number[];
  sampled: number;
  readonly spans: FollowedSpan[];
}

/** Runs every row's steps; per row, its named spans in order. */
export async function followRows(model: SequenceModel, request: FollowRequest): Promise<FollowedSpan[][]> {
  const text = request.text ?? {};
  checkTextSampling(text);
  const g = model.geometry;
  const guided = request.image.cfg !== 0 && request.image.cfg !== 1;
  const needed = request.rows.length * (guided ? 2 : 1);
  if (needed > model.batch) {
    throw new SamplingError(
      `${request.rows.length} rows${guided ? " with guidance" : ""} need ${needed} model rows; ` +
        `the model has ${model.batch}`,
    );
  }
  const rows: Following[] = request.rows.map((r, i) => {
    checkFits(r.steps, g, i);
    const id = r.id ?? i;
    if (!Number.isInteger(id) || id < 0 || id >= IMAGE_STRIDE) {
      throw new RangeError(`row id must be an integer in 0..${IMAGE_STRIDE - 1}, got ${id}`);
    }
    return {
      row: { tokens: [], images: [] },
      id,
      generated: [],
      images: [],
      steps: r.steps,
      at: 0,
      slot: [],
      sampled: 0,
      spans: [],
    };
  });
  model.reset();
  const step = (r: Following) => r.steps[r.at];
  const append = (r: Following, ids: readonly number[]) => {
    r.row = { tokens: [...r.row.tokens, ...ids], images: r.row.images };
  };
  for (;;) {
    for (const r of rows) {
      for (let s = step(r); s?.kind === "tokens"; s = step(r)) {
        append(r, s.ids);
        if (s.name !== undefined) r.spans.push(textSpan(s.name, s.ids, false, g.tokenizer));
        r.at++;
      }
    }
    // Given images: placed clean, then committed so a KV cache holds their keys and values.
    const placing = rows.filter((r) => given(step(r)));
    if (placing.length > 0) {
      for (const r of placing) {
        const pixels = (step(r) as Extract<RowStep, { kind: "image" }>).pixels!;
        r.row = {
          tokens: [...r.row.tokens, SPECIAL.boi, ...new Array<number>(g.P).fill(0)],
          images: [...r.row.images, { start: r.row.tokens.length + 1, pixels }],
        };
      }
      await model.commit(rows.map((r) => (placing.includes(r) ? r.row : undefined)));
      for (const r of placing) {
        append(r, [SPECIAL.eoi]);
        const s = step(r) as Extract<RowStep, { kind: "image" }>;
        r.spans.push({ kind: "image", name: s.name, pixels: s.pixels!, drawn: false });
        r.at++;
      }
      continue;
    }
    const drawing = rows.filter((r) => drawn(step(r)));
    if (drawing.length > 0) {
      for (const r of drawing) append(r, [SPECIAL.boi]);
      await drawImages(model, rows, drawing, request);
      for (const r of drawing) {
        r.spans.push({
          kind: "image",
          name: step(r)!.name!,
          pixels: r.images[r.images.length - 1]!,
          drawn: true,
        });
        r.at++;
      }
      continue;
    }
    const writing = rows.filter((r) => step(r)?.kind === "write");
    if (writing.length === 0) break;
    const scores = await model.nextScores(rows.map((r) => (writing.includes(r) ? r.row : undefined)));
    for (const r of writing) {
      const s = step(r) as Extract<RowStep, { kind: "write" }>;
      const b = rows.indexOf(r);
      const id = sampleToken(
        scores.subarray(b * g.vocab, (b + 1) * g.vocab),
        text,
        textUniform(request.seed, r.id, r.sampled++),
      );
      // After EOS a training slot holds padding: write it in rather than sample it.
      const ids = id === SPECIAL.eos
        ? [id, ...new Array<number>(s.length - r.slot.length - 1).fill(g.tokenizer.padId)]
        : [id];
      append(r, ids);
      r.slot.push(...ids);
      if (r.slot.length >= s.length) {
        r.spans.push(textSpan(s.name, r.slot, true, g.tokenizer));
        r.slot = [];
        r.at++;
      }
    }
  }
  return rows.map((r) => r.spans);
}

/** An image step the model draws (no pixels given). */
const drawn = (s: RowStep | undefined): boolean => s?.kind === "image" && s.pixels === undefined;
/** An image step whose pixels are given. */
const given = (s: RowStep | undefined): boolean => s?.kind === "image" && s.pixels !== undefined;

function textSpan(
  name: string,
  ids: readonly number[],
  written: boolean,
  tokenizer: Tokenizer,
): FollowedSpan {
  const end = ids.findIndex((id) => id === SPECIAL.eos || id === tokenizer.padId);
  const shown = (end < 0 ? ids : ids.slice(0, end)).filter((id) => !tokenizer.isSpecial(id));
  return { kind: "text", name, text: tokenizer.decode(shown), ids: [...ids], written };
}

/** Refuses a row that does not fit the model: positions past seq, more images than slots. */
function checkFits(steps: readonly RowStep[], g: SequenceModel["geometry"], i: number): void {
  const length = steps.reduce(
    (n, s) => n + (s.kind === "tokens" ? s.ids.length : s.kind === "write" ? s.length : g.P + 2),
    0,
  );
  const images = steps.filter((s) => s.kind === "image").length;
  if (length > g.seq) {
    throw new SamplingError(`row ${i} takes ${length} positions; the model's rows hold ${g.seq} (seq)`);
  }
  if (images > g.N) {
    throw new SamplingError(`row ${i} has ${images} images; the model has ${g.N} slots (imagesPerRow)`);
  }
  const wrong = steps.find((s) => s.kind === "image" && s.pixels && s.pixels.length !== g.pixels);
  if (wrong) {
    throw new SamplingError(
      `row ${i}: image "${wrong.name}" has the wrong number of values; expected C*H*W = ${g.pixels}`,
    );
  }
  const bad = steps.flatMap((s) => (s.kind === "tokens" ? s.ids : [])).find((id) => id < 0 || id >= g.vocab);
  if (bad !== undefined) throw new SamplingError(`row ${i} has token ${bad} outside 0..${g.vocab - 1}`);
}
