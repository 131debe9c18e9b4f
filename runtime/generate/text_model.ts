/**
 * Text generation over any spec whose `logits` entry reads only token ids and layout fields (a
 * text-only language model such as examples/text_lm.ts): each row is one text document, BOS, the
 * prompt's ids, then the sampled tokens; padding after it (doc -1). The rows follow the spec as it
 * trained (`textFrame`): no BOS when the vocabulary has no id for it (a byte-level model of 256
 * tokens such as examples/prefix_lm.ts trains on bare bytes), and where the logits entry reads the
 * `prefix` layout field the prompt's positions are the document's prefix, as a prefix-LM's prompt
 * was in training, so it continues the prompt it saw both ways. Every step re-runs the whole
 * row (such specs have no KV-cache entries). A row ends at EOS, at its budget or at seq. A row's
 * randomness depends only on its index, so rows come out the same alone or together.
 */
import { buildLayout, layoutFeed, type Segment } from "../../spec/layout_builder.ts";
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
  /** Ids after BOS (when the model has one), per row. */
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

/** How a model's rows are laid out: what `generateText` and its tests build. */
export interface TextFrame {
  /** The BOS id rows open with, or undefined when the vocabulary has none. */
  readonly bos: number | undefined;
  /** The padding id: the tokenizer's when the vocabulary holds it, else 0 (as training pads). */
  readonly pad: number;
  /** The logits entry reads `layout_prefix`: a row's prompt positions are marked as its prefix. */
  readonly prefix: boolean;
}

/**
 * The frame of a model with `vocab` logits reading layout `fields`. BOS only when its id fits the
 * vocabulary: ids past it would index past the embedding, and a model without the id never saw it.
 */
export function textFrame(vocab: number, fields: readonly LayoutField[], padId: number): TextFrame {
  return {
    bos: SPECIAL.bos < vocab ? SPECIAL.bos : undefined,
    pad: padId < vocab ? padId : 0,
    prefix: fields.includes("prefix"),
  };
}

/**
 * One step's logits inputs for `rows` (their ids so far; `given` of them the prompt, BOS included)
 * in a batch of `batch` rows of `seq`: tokens [batch, seq] and the layout fields the entry reads.
 * Rows past `rows.length` are filler: one position (BOS, or the pad id).
 */
export function textStepInputs(
  rows: readonly { readonly tokens: readonly number[]; readonly given: number }[],
  batch: number,
  seq: number,
  fields: readonly LayoutField[],
  frame: TextFrame,
): Record<string, Int32Array> {
  const tokens = new Int32Array(batch * seq).fill(frame.pad);
  rows.forEach((r, b) => tokens.set(r.tokens, b * seq));
  for (let b = rows.length; b < batch; b++) tokens[b * seq] = frame.bos ?? frame.pad;
  const layout = buildLayout(
    Array.from({ length: batch }, (_, b): Segment[] => {
      const r = rows[b];
      if (!r) return [{ kind: "text", length: 1, doc: 0 }];
      if (!frame.prefix) return [{ kind: "text", length: r.tokens.length, doc: 0 }];
      const after = r.tokens.length - r.given;
      return [
        { kind: "text", length: r.given, doc: 0, prefix: true },
        ...(after > 0 ? [{ kind: "text" as const, length: after, doc: 0 }] : []),
      ];
    }),
    seq,
  );
  return { tokens, ...layoutFeed(layout.fields, fields) };
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
  const frame = textFrame(vocab, fields, request.tokenizer.padId);
  const rows = request.prompts.map((p, i) => {
    const tokens = frame.bos === undefined ? [...p] : [frame.bos, ...p];
    if (tokens.length === 0) {
      throw new SamplingError(
        `prompt ${i} is empty and the model has no BOS token (its vocabulary is ${vocab}): give a prompt`,
      );
    }
    const bad = tokens.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new SamplingError(`prompt ${i} has token ${bad} outside 0..${vocab - 1}`);
    if (tokens.length > seq) {
      throw new SamplingError(`prompt ${i} takes ${tokens.length} positions; the model's rows hold ${seq}`);
    }
    return {
      tokens,
      given: tokens.length,
      sampled: [] as number[],
      finish: undefined as FinishReason | undefined,
      index: i,
    };
  });
  for (const r of rows) if (request.maxTokens <= 0) r.finish = "budget";
  for (let first = 0; first < rows.length; first += batch) {
    const part = rows.slice(first, first + batch);
    for (;;) {
      for (const r of part) if (!r.finish && r.tokens.length >= seq) r.finish = "length";
      const going = part.filter((r) => !r.finish);
      if (going.length === 0) break;
      const feed = textStepInputs(part, batch, seq, fields, frame);
      const logits = (await runner.run("logits", feed)).logits as Float32Array; // [B, seq, vocab]
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
