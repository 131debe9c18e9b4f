/**
 * Text generation over any spec whose `logits` entry reads only token ids and layout fields (a
 * text-only language model such as examples/text_lm.ts): each row is one text document, BOS, the
 * prompt's ids, then the sampled tokens; padding after it (doc -1). Every step re-runs the whole
 * row (such specs have no KV-cache entries). A row ends at EOS, at its budget or at seq. A row's
 * randomness depends only on its index, so rows come out the same alone or together.
 */
import { buildLayout, layoutFeed } from "../../spec/layout_builder.ts";
import type { LayoutField } from "../../compiler/ir/mask.ts";
import { SPECIAL, type Tokenizer } from "../tokenizer.ts";
import type { FinishReason } from "./interleaved.ts";
import { SamplingError } from "./prediction.ts";
import type { EntryRunner } from "./sequence_model.ts";
import { checkTextSampling, sampleToken, type TextSampling, textUniform } from "./text_sampling.ts";

/** Whether a plan's `logits` entry takes only tokens and layout fields (a text-only model). */
export function isTextModel(runner: Pick<EntryRunner, "plan">): boolean {
  const entry = runner.plan.entries.logits;
  return entry !== undefined &&
    entry.inputs.every((s) => s.name === "tokens" || s.name.startsWith("layout_"));
}

export interface TextRequest {
  /** Ids after BOS, per row. */
  readonly prompts: readonly (readonly number[])[];
  /** Sampled tokens per row at most. */
  readonly maxTokens: number;
  readonly seed: number;
  /** Default greedy. */
  readonly text?: TextSampling;
  readonly tokenizer: Tokenizer;
}

export interface TextRow {
  /** The sampled text decoded (specials left out). */
  readonly text: string;
  /** Sampled ids, EOS excluded. */
  readonly tokens: number[];
  readonly finish: FinishReason;
}

export async function generateText(runner: EntryRunner, request: TextRequest): Promise<TextRow[]> {
  const sampling = request.text ?? {};
  checkTextSampling(sampling);
  const entry = runner.plan.entries.logits;
  if (!entry || !isTextModel(runner)) {
    throw new SamplingError(`the plan of "${runner.plan.model}" has no text-only logits entry`);
  }
  const batch = runner.plan.dims.batch ?? 1;
  const seq = runner.plan.dims.seq;
  const out = entry.outputs.find((s) => s.name === "logits");
  const vocab = out?.shape[out.shape.length - 1];
  if (seq === undefined || vocab === undefined) {
    throw new SamplingError(`the logits entry of "${runner.plan.model}" has no seq dim or logits output`);
  }
  const fields = entry.inputs.filter((s) => s.name.startsWith("layout_"))
    .map((s) => s.name.slice("layout_".length) as LayoutField);
  const rows = request.prompts.map((p, i) => {
    const tokens = [SPECIAL.bos, ...p];
    const bad = tokens.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new SamplingError(`prompt ${i} has token ${bad} outside 0..${vocab - 1}`);
    if (tokens.length > seq) {
      throw new SamplingError(`prompt ${i} takes ${tokens.length} positions; the model's rows hold ${seq}`);
    }
    return { tokens, sampled: [] as number[], finish: undefined as FinishReason | undefined, index: i };
  });
  for (const r of rows) if (request.maxTokens <= 0) r.finish = "budget";
  for (let first = 0; first < rows.length; first += batch) {
    const part = rows.slice(first, first + batch);
    for (;;) {
      for (const r of part) if (!r.finish && r.tokens.length >= seq) r.finish = "length";
      const going = part.filter((r) => !r.finish);
      if (going.length === 0) break;
      const tokens = new Int32Array(batch * seq).fill(request.tokenizer.padId);
      const lengths = Array.from({ length: batch }, (_, b) => part[b]?.tokens.length ?? 1);
      part.forEach((r, b) => tokens.set(r.tokens, b * seq));
      for (let b = part.length; b < batch; b++) tokens[b * seq] = SPECIAL.bos;
      const layout = buildLayout(lengths.map((length) => [{ kind: "text", length, doc: 0 }]), seq);
      const logits = (await runner.run("logits", { tokens, ...layoutFeed(layout.fields, fields) }))
        .logits as Float32Array; // [B, seq, vocab]
      for (const r of going) {
        const b = part.indexOf(r);
        const at = (b * seq + r.tokens.length - 1) * vocab;
        const id = sampleToken(
          logits.subarray(at, at + vocab),
          sampling,
          textUniform(request.seed, r.index, r.sampled.length),
        );
        if (id === SPECIAL.eos) {
          r.finish = "eos";
          continue;
        }
        r.tokens.push(id);
        r.sampled.push(id);
        if (r.sampled.length >= request.maxTokens) r.finish = "budget";
      }
    }
  }
  return rows.map((r) => ({
    text: request.tokenizer.decode(r.sampled.filter((id) => !request.tokenizer.isSpecial(id))),
    tokens: r.sampled,
    finish: r.finish ?? "length",
  }));
}
