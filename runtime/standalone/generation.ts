/**
 * A loaded module's generation: the interleaved loop of runtime/generate/interleaved.ts over the
 * plan's entries, KV-cached (`cachedModel`: prefill / decode / denoise_span) when the plan has them,
 * otherwise re-running the whole row (`uncachedModel`: logits / denoise). Requests are served one at
 * a time: the sequence model holds per-row state between calls.
 */
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import type { Executor } from "../executor.ts";
import { CACHED_ENTRIES, cachedModel, hasCachedEntries } from "../generate/cached_model.ts";
import { generate, type GenerationRequest } from "../generate/interleaved.ts";
import { captionPrompt, checkCaptionFits, imagePrompt, type Prompt } from "../generate/prompts.ts";
import { SamplingError } from "../generate/prediction.ts";
import { type SequenceModel, uncachedModel } from "../generate/sequence_model.ts";
import type { GenerateRequest, GenerateResult } from "./api.ts";

export { CACHED_ENTRIES };
/** Entries of the uncached loop: every call re-runs the whole row. */
export const UNCACHED_ENTRIES = ["logits", "denoise"] as const;

/** The loop's output for one request: text, and images as [C, H, W] values in [-1, 1]. */
export type RawResult = Omit<GenerateResult, "images"> & { readonly images: Float32Array[] };

export interface Generator {
  /** "cached" or "uncached": which entries generation runs. */
  readonly kind: "cached" | "uncached";
  generate(request: GenerateRequest): Promise<RawResult>;
  caption(values: Float32Array): Promise<string>;
}

export function createGenerator(executor: Executor, config: TransfusionConfig): Generator {
  const cached = hasCachedEntries(executor);
  const model = cached ? cachedModel(executor, config) : uncachedModel(executor, config);
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(work);
    queue = result.catch(() => undefined);
    return result;
  };
  return {
    kind: cached ? "cached" : "uncached",
    generate: (request) => serial(() => generateOne(model, request)),
    caption: (values) =>
      serial(async () => {
        const [row] = await generate(model, {
          prompts: [imagePrompt(values)],
          maxTokens: model.config.text.captionLength,
          seed: 0,
          image: { steps: 1, cfg: 0 },
        });
        return row?.text ?? "";
      }),
  };
}

/** One row: the prompt, then what the model writes and draws. */
async function generateOne(model: SequenceModel, request: GenerateRequest): Promise<RawResult> {
  const r = resolve(request, model.config);
  const guided = r.image.cfg !== 0 && r.image.cfg !== 1;
  if (guided && model.batch < 2) {
    throw new SamplingError(
      `guidance ${r.image.cfg} needs 2 rows per image; the module was compiled for batch ${model.batch} ` +
        `(pass guidance 0, or compile with --batch 2)`,
    );
  }
  const [row] = await generate(model, { ...r, prompts: [r.prompt] });
  return { text: row!.text, images: row!.images };
}

function resolve(request: GenerateRequest, config: TransfusionConfig) {
  if (typeof request?.prompt !== "string") throw new SamplingError("generate: prompt must be a string");
  const asText = (request.promptAs ?? "caption") === "text";
  if (!asText) checkCaptionFits(request.prompt, config);
  const prompt: Prompt = asText
    ? { parts: [{ text: request.prompt }] }
    : captionPrompt(request.prompt, config);
  const steps = request.steps ?? Math.min(50, config.diffusion.schedule === "flow" ? 50 : config.diffusion.T);
  const base: Omit<GenerationRequest, "prompts"> & { prompt: Prompt } = {
    prompt,
    maxTokens: request.maxTokens ?? config.text.captionLength,
    seed: request.seed ?? 0,
    text: {
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.topK === undefined ? {} : { topK: request.topK }),
      ...(request.topP === undefined ? {} : { topP: request.topP }),
    },
    image: {
      steps,
      cfg: request.guidance ?? 3,
      ...(request.sampler === undefined ? {} : { method: request.sampler }),
    },
  };
  return base;
}
