/**
 * Interleaved generation: one loop for text and images over a SequenceModel (cached or not).
 * Each round, the rows whose last token is BOI draw an image together (noise patches, the diffusion
 * sampler overwriting x_t, the commit pass at t = 0, EOI), then every row still going samples its
 * next token. A row ends at EOS, at its token budget, or when the model has no room left.
 * Classifier-free guidance runs each drawing row's unconditional twin in the same calls: batch row
 * rows + b holds BOS, BOI and the image, the prompt with the caption dropped (as in training).
 * A row's randomness depends only on its prompt's id, so rows come out the same alone or together.
 */
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { diffusionSchedule } from "../../spec/transfusion/schedule.ts";
import { SPECIAL } from "../tokenizer.ts";
import { type NoiseProcess, type PredictionTarget, usesGuidance } from "./prediction.ts";
import { lockstep } from "./lockstep.ts";
import { type Prompt, promptRow, roomForImage } from "./prompts.ts";
import type { Row, RowImage } from "./rows.ts";
import { diffusionSampler, type SamplerMethod } from "./sampler.ts";
import type { SequenceModel } from "./sequence_model.ts";
import { checkTextSampling, sampleToken, type TextSampling, textUniform } from "./text_sampling.ts";

export interface ImageSampling {
  /** Default: DDIM for DDPM models, Euler for flow matching. */
  readonly method?: SamplerMethod;
  readonly steps: number;
  /** Guidance weight; 0 and 1: none. */
  readonly cfg: number;
}

export interface GenerationRequest {
  readonly prompts: readonly Prompt[];
  /** Sampled tokens per row at most (BOI counts; the image it starts is still finished, with its EOI). */
  readonly maxTokens: number;
  readonly seed: number;
  /** Default greedy. */
  readonly text?: TextSampling;
  readonly image: ImageSampling;
}

export type FinishReason = "eos" | "budget" | "length";

export interface GeneratedRow {
  /** The generated text tokens decoded (specials left out). */
  readonly text: string;
  /** Generated ids, BOI and EOI included (an image's patches are not), EOS excluded. */
  readonly tokens: number[];
  /** Generated images, C*H*W each, in the model's range ([-1, 1]). */
  readonly images: Float32Array[];
  readonly finish: FinishReason;
}

/** The sampler a model's schedule calls for when none is named: DDIM for DDPM models, Euler for flow. */
export function defaultMethod(config: TransfusionConfig): SamplerMethod {
  return config.diffusion.schedule === "flow" ? "euler" : "ddim";
}

export function noiseProcess(config: TransfusionConfig): NoiseProcess {
  const schedule = diffusionSchedule(config.diffusion);
  return schedule.kind === "flow" ? { kind: "flow" } : { kind: "ddpm", alphaBar: schedule.alphaBar };
}

/** Prompt ids are below this; image n of a prompt draws noise block id + n * IMAGE_STRIDE. */
export const IMAGE_STRIDE = 1 << 12;

/** A row being grown: what `drawImages` reads and extends. */
export interface GrowingRow {
  row: Row;
  /** The row's random streams (its prompt id). */
  readonly id: number;
  /** Ids the loop appended (BOI and EOI included, patches not). */
  readonly generated: number[];
  readonly images: Float32Array[];
}

/** Mutable per-row progress. */
interface Progress extends GrowingRow {
  sampled: number;
  finish: FinishReason | undefined;
}

export async function generate(model: SequenceModel, request: GenerationRequest): Promise<GeneratedRow[]> {
  const { prompts, maxTokens } = request;
  const text = request.text ?? {};
  checkTextSampling(text);
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new RangeError(`maxTokens must be >= 0, got ${maxTokens}`);
  }
  const guided = usesGuidance(request.image.cfg);
  const needed = prompts.length * (guided ? 2 : 1);
  if (needed > model.batch) {
    throw new RangeError(
      `${prompts.length} prompts${
        guided ? " with guidance" : ""
      } need ${needed} model rows; the model has ${model.batch}`,
    );
  }
  const g = model.geometry;
  const rows: Progress[] = prompts.map((p, i) => ({
    row: promptRow(p, g),
    id: p.id ?? i,
    generated: [],
    images: [],
    sampled: 0,
    finish: undefined,
  }));
  for (const r of rows) {
    if (!Number.isInteger(r.id) || r.id < 0 || r.id >= IMAGE_STRIDE) {
      throw new RangeError(`prompt id must be an integer in 0..${IMAGE_STRIDE - 1}, got ${r.id}`);
    }
  }
  model.reset();
  const going = () => rows.filter((r) => r.finish === undefined);
  for (const r of rows) if (r.row.tokens.length >= g.seq) r.finish = "length";
  if (maxTokens === 0) { for (const r of going()) if (last(r.row) !== SPECIAL.boi) r.finish = "budget"; }
  while (going().length > 0) {
    const drawing = going().filter((r) => last(r.row) === SPECIAL.boi);
    if (drawing.length > 0) await drawImages(model, rows, drawing, request);
    for (const r of drawing) if (r.sampled >= maxTokens) r.finish = "budget";
    const writing = going().filter((r) => r.row.tokens.length < g.seq);
    for (const r of going()) if (r.row.tokens.length >= g.seq) r.finish = "length";
    if (writing.length === 0) break;
    const scores = await model.nextScores(rows.map((r) => (writing.includes(r) ? r.row : undefined)));
    for (const r of writing) {
      const b = rows.indexOf(r);
      const row = scores.subarray(b * g.vocab, (b + 1) * g.vocab);
      const id = sampleToken(row, text, textUniform(request.seed, r.id, r.sampled));
      r.sampled++;
      if (id === SPECIAL.eos) {
        r.finish = "eos";
        continue;
      }
      if (id === SPECIAL.boi && !roomForImage(r.row, g)) {
        r.finish = "length";
        continue;
      }
      r.row = { tokens: [...r.row.tokens, id], images: r.row.images };
      r.generated.push(id);
      if (r.sampled >= maxTokens && id !== SPECIAL.boi) r.finish = "budget";
    }
  }
  return rows.map((r) => ({
    text: g.tokenizer.decode(r.generated),
    tokens: r.generated,
    images: r.images,
    finish: r.finish ?? "length",
  }));
}

/**
 * Draws one image for every row of `drawing` (each ends in BOI) and appends it with its EOI. Batch
 * row b of every model call is `rows[b]` (its unconditional twin rows.length + b under guidance).
 */
export async function drawImages(
  model: SequenceModel,
  rows: readonly GrowingRow[],
  drawing: readonly GrowingRow[],
  request: Pick<GenerationRequest, "image" | "seed">,
): Promise<void> {
  const g = model.geometry;
  const { cfg } = request.image;
  const guided = usesGuidance(cfg);
  const withImage = (row: Row): Row => ({
    tokens: [...row.tokens, ...new Array<number>(g.P).fill(0)],
    images: [...row.images, { start: row.tokens.length, pixels: new Float32Array(g.pixels) }],
  });
  for (const r of drawing) r.row = withImage(r.row);
  // Model rows: b = the conditional row of rows[b]; rows.length + b = its unconditional twin.
  const modelRows: (Row | undefined)[] = rows.map((r) => (drawing.includes(r) ? r.row : undefined));
  if (guided) {
    const twin = withImage({ tokens: [SPECIAL.bos, SPECIAL.boi], images: [] });
    modelRows.push(...rows.map((r) => (drawing.includes(r) ? twin : undefined)));
  }
  const denoiser = lockstep(drawing.length, async (calls, t) => {
    const xt = new Float32Array(modelRows.length * g.pixels);
    calls.forEach((x, k) => {
      const b = rows.indexOf(drawing[k]!);
      xt.set(x.subarray(0, g.pixels), b * g.pixels);
      if (guided) xt.set(x.subarray(g.pixels), (rows.length + b) * g.pixels);
    });
    const pred = await model.denoise(modelRows, xt, t);
    return calls.map((_, k) => {
      const b = rows.indexOf(drawing[k]!);
      const cond = pred.subarray(b * g.pixels, (b + 1) * g.pixels);
      if (!guided) return cond.slice();
      const both = new Float32Array(2 * g.pixels);
      both.set(cond);
      both.set(pred.subarray((rows.length + b) * g.pixels, (rows.length + b + 1) * g.pixels), g.pixels);
      return both;
    });
  });
  const sampler = diffusionSampler({
    process: noiseProcess(model.config),
    target: model.config.diffusion.target as PredictionTarget,
    method: request.image.method ?? defaultMethod(model.config),
    steps: request.image.steps,
    cfg,
    seed: request.seed,
  });
  const images = await Promise.all(drawing.map((r, k) =>
    // Image n of prompt `id` draws noise block id + n * IMAGE_STRIDE, whatever else runs beside it; a
    // first image gets block id, as generateImages gives prompt id.
    sampler.sample(denoiser(k), 1, g.pixels, { firstRow: r.id + r.images.length * IMAGE_STRIDE })
  ));
  drawing.forEach((r, k) => {
    const image = images[k]!;
    const done: RowImage = { start: r.row.images[r.row.images.length - 1]!.start, pixels: image };
    r.row = { tokens: r.row.tokens, images: [...r.row.images.slice(0, -1), done] };
    r.images.push(image);
  });
  await model.commit(rows.map((r) => (drawing.includes(r) ? r.row : undefined)));
  for (const r of drawing) {
    r.row = { tokens: [...r.row.tokens, SPECIAL.eoi], images: r.row.images };
    r.generated.push(SPECIAL.eoi);
  }
}

function last(row: Row): number | undefined {
  return row.tokens[row.tokens.length - 1];
}
