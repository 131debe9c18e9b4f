/**
 * The samplers wired to a Transfusion model's entries: text-to-image over "denoise" (rows laid out
 * by spec/transfusion/sequence.ts exactly as in training), image-to-text over "logits", and
 * held-out losses over "forward".
 */
import { captionBatch, promptBatch, sequenceGeometry } from "../../spec/transfusion/sequence.ts";
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import type { DataSource } from "../../spec/data.ts";
import type { Executor } from "../executor.ts";
import { greedyDecode } from "./greedy.ts";
import { type PredictionTarget, usesGuidance } from "./prediction.ts";
import { defaultMethod, noiseProcess } from "./interleaved.ts";
import { type Denoiser, diffusionSampler, type SampleProgress, type SamplerMethod } from "./sampler.ts";
import type { ModelSession } from "./run.ts";
import { cachedModel } from "./cached_model.ts";
import { followRows, templateSteps } from "./follow.ts";
import { imageFirstRow, templateImages } from "../../spec/transfusion/rows.ts";
import { captionPrompt, promptRow } from "./prompts.ts";
import type { Row } from "./rows.ts";
import type { EntryRunner } from "./sequence_model.ts";
import { SPECIAL } from "../tokenizer.ts";

// Shared with the interleaved loop, which the generated module bundles (it must not import run.ts).
export { defaultMethod, noiseProcess };

export interface GenerateOptions {
  readonly method?: SamplerMethod;
  readonly steps: number;
  /** Guidance weight (0 and 1: none). */
  readonly cfg: number;
  readonly seed: number;
  /**
   * Images per sampler run (more are done in chunks); default 32, or as many as an already open
   * executor of the session holds.
   */
  readonly chunk?: number;
  readonly onStep?: (p: SampleProgress & { readonly done: number; readonly total: number }) => void;
}

/**
 * One image per prompt (C * size * size each, in [-1, 1]). Image i's starting noise is element block
 * i of the seed's stream, so it does not depend on how the prompts are chunked. Where the session
 * has the KV-cached entries, each row's prompt is run once (prefill) and every sampler step runs only
 * the image's P patches against the cache (denoise_span); otherwise every step runs the whole row
 * (denoise). The images agree to float rounding: the prompt's keys and values do not depend on the
 * image, which comes after it.
 */
export async function generateImages(
  session: ModelSession,
  prompts: readonly string[],
  opts: GenerateOptions,
): Promise<Float32Array[]> {
  const { config } = session;
  const g = sequenceGeometry(config);
  const guided = usesGuidance(opts.cfg);
  // Even chunks of at most `opts.chunk`: 80 prompts run as 3 x 27, not 32 + 32 + 16 padded to 32.
  const most = opts.chunk ?? 32;
  const wanted = Math.ceil(prompts.length / Math.ceil(prompts.length / most));
  const rows = guided ? 2 * wanted : wanted;
  const { executor, batch } = await (session.cached?.(rows) ?? session.entry("denoise", rows));
  const cached = executor.plan.entries.denoise_span !== undefined;
  // A session may hand back an open executor with room for more (up to 4x the rows, run.ts): its
  // steps cost the same with rows idle, so without an explicit chunk the chunks fill it. 40 guided
  // prompts after an 80-row eval ran as 2 x 20 on 80 rows: 50 full-price steps for 25.
  const capacity = guided ? Math.floor(batch / 2) : batch;
  const chunk = Math.min(capacity, opts.chunk === undefined ? prompts.length : wanted);
  if (chunk < 1) throw new Error(`the denoise entry's batch of ${batch} rows cannot hold a guided pair`);
  const out: Float32Array[] = [];
  for (let first = 0; first < prompts.length; first += chunk) {
    const part = prompts.slice(first, first + chunk);
    const padded = [...part, ...Array<string>(chunk - part.length).fill(part[0]!)];
    const captions = guided ? [...padded, ...padded.map(() => undefined)] : padded;
    const sampler = diffusionSampler({
      process: noiseProcess(config),
      target: config.diffusion.target as PredictionTarget,
      method: opts.method ?? defaultMethod(config),
      steps: opts.steps,
      cfg: opts.cfg,
      seed: opts.seed,
    });
    const denoiser = cached
      ? cachedDenoiser(executor, config, captions)
      : modelDenoiser(executor, batch, config, captions);
    const images = await sampler.sample(
      denoiser,
      chunk,
      g.pixels,
      { firstRow: first, onStep: (p) => opts.onStep?.({ ...p, done: first, total: prompts.length }) },
    );
    for (let i = 0; i < part.length; i++) out.push(images.slice(i * g.pixels, (i + 1) * g.pixels));
  }
  return out;
}

/**
 * The denoise entry as a `Denoiser` for rows captioned by `captions` (undefined: condition dropped):
 * image slot 0 of each row holds x_t, the rest of the batch (up to `batch` rows) repeats row 0.
 */
export function modelDenoiser(
  executor: Executor,
  batch: number,
  config: TransfusionConfig,
  captions: readonly (string | undefined)[],
): Denoiser {
  const g = sequenceGeometry(config);
  if (captions.length > batch) throw new Error(`${captions.length} rows do not fit the batch of ${batch}`);
  const fill = [...captions, ...Array<string | undefined>(batch - captions.length).fill(captions[0])];
  // Tokens and layout are the same every step; only x_t and t change.
  const fixed =
    promptBatch(fill, new Float32Array(batch * g.N * g.pixels), new Float32Array(batch * g.N), config, 1)
      .inputs;
  return async (xt, t, rows) => {
    if (rows !== captions.length) throw new Error(`denoiser for ${captions.length} rows called with ${rows}`);
    const slots = new Float32Array(batch * g.N * g.pixels);
    for (let b = 0; b < batch; b++) {
      const from = (b < rows ? b : 0) * g.pixels;
      slots.set(xt.subarray(from, from + g.pixels), b * g.N * g.pixels);
    }
    const times = new Float32Array(batch * g.N).fill(t);
    const pred = (await executor.run("denoise", { ...fixed, x_t: slots, t: times })).pred as Float32Array;
    const out = new Float32Array(rows * g.pixels);
    for (let b = 0; b < rows; b++) {
      out.set(pred.subarray(b * g.N * g.pixels, (b * g.N + 1) * g.pixels), b * g.pixels);
    }
    return out;
  };
}

/**
 * The cached entries as a `Denoiser` for caption-first rows (undefined: the condition dropped, BOS
 * then BOI), laid out as training and `modelDenoiser` lay them out: BOS, the caption slot, BOI, then
 * the image being drawn. The first call prefills the prompts; each call then runs denoise_span.
 */
export function cachedDenoiser(
  executor: EntryRunner,
  config: TransfusionConfig,
  captions: readonly (string | undefined)[],
): Denoiser {
  const model = cachedModel(executor, config);
  const g = model.geometry;
  if (captions.length > model.batch) {
    throw new Error(`${captions.length} rows do not fit the batch of ${model.batch}`);
  }
  const prompts = captions.map((c) =>
    promptRow(c === undefined ? { parts: [{ tokens: [SPECIAL.boi] }] } : captionPrompt(c, config), g)
  );
  const patches = new Array<number>(g.P).fill(0);
  return (xt, t, rows) => {
    if (rows !== captions.length) throw new Error(`denoiser for ${captions.length} rows called with ${rows}`);
    const drawing = prompts.map((p, b): Row => ({
      tokens: [...p.tokens, ...patches],
      images: [...p.images, {
        start: p.tokens.length,
        pixels: xt.subarray(b * g.pixels, (b + 1) * g.pixels),
      }],
    }));
    return model.denoise(drawing, xt, t);
  };
}

/**
 * Greedy captions of model images (C * size * size, in [-1, 1]), given clean (t = 0) before the
 * caption slot. A caption ends at EOS (or any special token) or after captionLength tokens.
 */
export async function captionImages(
  session: ModelSession,
  images: readonly Float32Array[],
  opts: { readonly chunk?: number } = {},
): Promise<string[]> {
  if (images.length === 0) return [];
  const { config } = session;
  const g = sequenceGeometry(config);
  const vocab = config.text.vocab;
  const most = opts.chunk ?? 32;
  const wanted = Math.ceil(images.length / Math.ceil(images.length / most));
  if (session.cached) return await cachedCaptions(session.cached, config, images, wanted);
  const { executor, batch } = await session.entry("logits", wanted);
  const out: string[] = [];
  for (let first = 0; first < images.length; first += batch) {
    const part = images.slice(first, first + batch);
    const rows = [...part, ...Array<Float32Array>(batch - part.length).fill(part[0]!)];
    const ids = await greedyDecode(async (generated) => {
      const { inputs, readAt } = captionBatch(rows, generated, config);
      const logits = (await executor.run("logits", inputs)).logits as Float32Array; // [B, seq, vocab]
      const next = new Float32Array(batch * vocab);
      for (let b = 0; b < batch; b++) {
        const at = (b * g.seq + readAt[b]!) * vocab;
        next.set(logits.subarray(at, at + vocab), b * vocab);
      }
      return next;
    }, { rows: batch, vocab, budget: g.captionLength, stop: (id) => g.tokenizer.isSpecial(id) });
    out.push(...ids.slice(0, part.length).map((row) => g.tokenizer.decode(row)));
  }
  return out;
}

/**
 * Captions through the KV-cached entries: each image is committed once (its keys and values go into
 * the cache) and every caption token is one decode step of one position, where the uncached loop
 * runs the whole row through "logits" per token. Greedy both ways, so the texts are the same.
 */
async function cachedCaptions(
  cached: NonNullable<ModelSession["cached"]>,
  config: TransfusionConfig,
  images: readonly Float32Array[],
  wanted: number,
): Promise<string[]> {
  const g = sequenceGeometry(config);
  const { executor, batch } = await cached(wanted);
  const model = cachedModel(executor, config);
  const template = imageFirstRow(g.captionLength, 1);
  const [image] = templateImages(template);
  const out: string[] = [];
  for (let first = 0; first < images.length; first += batch) {
    const rows = images.slice(first, first + batch).map((pixels, i) => ({
      steps: templateSteps(template, { [image!.name]: pixels }, g.tokenizer),
      id: first + i,
    }));
    const followed = await followRows(model, { rows, seed: 0, image: { steps: 1, cfg: 0 } });
    // Up to the first special token, as the uncached loop stops there (a written slot goes on).
    for (const spans of followed) {
      const slot = spans.find((s) => s.kind === "text");
      const ids = slot?.kind === "text" ? slot.ids : [];
      const end = ids.findIndex((id) => g.tokenizer.isSpecial(id));
      out.push(g.tokenizer.decode(end < 0 ? ids : ids.slice(0, end)));
    }
  }
  return out;
}

/** Mean of the forward entry's outputs (loss and metrics) over the source's held-out batches. */
export async function heldOutLosses(
  session: ModelSession,
  source: DataSource,
  batchRows: number,
  maxBatches = Infinity,
): Promise<{ batches: number; values: Record<string, number> }> {
  const count = Math.min(source.evalBatches ?? 0, maxBatches);
  if (!source.evalBatch || count < 1) return { batches: 0, values: {} };
  const { executor } = await session.entry("forward", batchRows);
  const takesSeed = executor.plan.entries.forward!.inputs.some((s) => s.name === "seed");
  const sums: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    // A fixed seed per batch: the diffusion loss draws t and noise in-graph, the same on every eval.
    const inputs = { ...source.evalBatch(i), ...(takesSeed ? { seed: [0x5eed, i] } : {}) };
    const out = await executor.run("forward", inputs);
    for (const [k, v] of Object.entries(out)) if (v.length === 1) sums[k] = (sums[k] ?? 0) + v[0]! / count;
  }
  return { batches: count, values: sums };
}
