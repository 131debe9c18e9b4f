/**
 * Generation with and without the KV cache on the demo spec (examples/transfusion_demo.ts, random
 * weights), one plan holding every entry: text decode tokens/s (uncached: the "logits" entry over the
 * whole row per token; cached: one "decode" position per token), and images/s of 50-step DDIM with
 * classifier-free guidance through the interleaved loop (cached; uncached for the ratio).
 * `--quick` decodes fewer tokens and draws with fewer steps.
 */
import { parseArgs } from "node:util";
import demo from "../../examples/transfusion_demo.ts";
import { compile } from "../../compiler/mod.ts";
import { describeAdapter, Executor, openDevice } from "../../runtime/mod.ts";
import { resolveConfig } from "../../spec/mod.ts";
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { SPECIAL } from "../../runtime/tokenizer.ts";
import { type SequenceModel, uncachedModel } from "../../runtime/generate/sequence_model.ts";
import { cachedModel } from "../../runtime/generate/cached_model.ts";
import { generate } from "../../runtime/generate/interleaved.ts";
import { captionPrompt } from "../../runtime/generate/prompts.ts";
import type { Row } from "../../runtime/generate/rows.ts";
import { generateImages, type ModelSession } from "../../runtime/generate/mod.ts";
import { report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });
const ROWS = 4; // prompts; guidance doubles the model rows
const SEQ = 64;
const TOKENS = values.quick ? 16 : 40;
const STEPS = values.quick ? 10 : 50;
const CFG = 3;

const handle = await openDevice();
const adapter = describeAdapter(handle);
const config = { ...resolveConfig(demo.config as never, {}, "demo") as TransfusionConfig, seq: SEQ };
const t0 = performance.now();
const plan = compile(demo, {
  dims: { batch: 2 * ROWS, seq: SEQ },
  entries: ["logits", "denoise", "prefill", "decode", "denoise_span"],
  adapterClass: adapter.adapterClass,
  adapterKey: adapter.cacheKey,
});
const compileMs = performance.now() - t0;
const executor = await Executor.create(plan, { seed: 1, handle });
const models = { uncached: uncachedModel(executor, config), cached: cachedModel(executor, config) };
const prompts = Array.from({ length: ROWS }, (_, i) => captionPrompt(`a handwritten digit ${i}`, config, i));

/** Greedy text from `ROWS` short prompts, never stopping (specials are skipped): tokens/s over all rows. */
async function decodeRate(model: SequenceModel, tokens: number): Promise<number> {
  const g = model.geometry;
  let rows: Row[] = Array.from({ length: ROWS }, (_, i) => ({
    tokens: [SPECIAL.bos, ...g.tokenizer.encode(`digit ${i}`)],
    images: [],
  }));
  model.reset();
  const start = performance.now();
  for (let k = 0; k < tokens; k++) {
    const scores = await model.nextScores(rows);
    rows = rows.map((row, b) => {
      const own = scores.subarray(b * g.vocab, b * g.vocab + 256); // bytes only: the row never ends
      return { tokens: [...row.tokens, own.indexOf(Math.max(...own))], images: [] };
    });
  }
  return (ROWS * tokens) / ((performance.now() - start) / 1000);
}

/** Images/s of `ROWS` caption-first prompts through the loop: DDIM with guidance, then the commit pass. */
async function imageRate(model: SequenceModel, steps: number): Promise<number> {
  const start = performance.now();
  const out = await generate(model, {
    prompts,
    maxTokens: 0,
    seed: 5,
    image: { method: "ddim", steps, cfg: CFG },
  });
  if (out.some((r) => r.images.length !== 1)) throw new Error("generation bench: a row drew no image");
  return ROWS / ((performance.now() - start) / 1000);
}

/**
 * Images/s of the sampler `sample` and `eval` call (generateImages): every step over the whole row
 * ("denoise"), or, with the session's cached entries, the prompt prefilled once and only the patches
 * per step ("denoise_span").
 */
async function evalSamplerRate(cached: boolean, steps: number): Promise<number> {
  const session: ModelSession = {
    config,
    entry: () => Promise.resolve({ executor, batch: 2 * ROWS }),
    ...(cached ? { cached: () => Promise.resolve({ executor, batch: 2 * ROWS }) } : {}),
  };
  const captions = Array.from({ length: ROWS }, (_, i) => `a handwritten digit ${i}`);
  const start = performance.now();
  await generateImages(session, captions, { steps, cfg: CFG, seed: 5, method: "ddim" });
  return ROWS / ((performance.now() - start) / 1000);
}

// The first dispatch of a pipeline compiles it (seconds on lavapipe): warm every entry up first.
const warm0 = performance.now();
for (const model of Object.values(models)) {
  await decodeRate(model, 2);
  await imageRate(model, 1);
}
await evalSamplerRate(false, 1);
await evalSamplerRate(true, 1);
const warmMs = performance.now() - warm0;

const rows: SuiteResult["rows"] = [];
const rates: Record<string, { text: number; images: number }> = {};
for (const [name, model] of Object.entries(models)) {
  const text = await decodeRate(model, TOKENS);
  const images = await imageRate(model, STEPS);
  rates[name] = { text, images };
  rows.push({
    model: name,
    "text tokens/s": text,
    [`images/s (DDIM ${STEPS}, cfg ${CFG})`]: images,
    [`ms/image`]: 1000 / images,
  });
}
const sampler = { uncached: await evalSamplerRate(false, STEPS), cached: await evalSamplerRate(true, STEPS) };
for (const [name, images] of Object.entries(sampler)) {
  rows.push({
    model: `sample/eval sampler, ${name}`,
    [`images/s (DDIM ${STEPS}, cfg ${CFG})`]: images,
    [`ms/image`]: 1000 / images,
  });
}
report({
  suite: "generation",
  rows,
  ratios: {
    "text decode, cached / uncached": rates.cached!.text / rates.uncached!.text,
    "images, cached / uncached": rates.cached!.images / rates.uncached!.images,
    "sample/eval sampler images, cached / uncached": sampler.cached / sampler.uncached,
  },
  notes: [
    `${demo.name}, random weights, ${ROWS} prompts (${
      2 * ROWS
    } model rows), seq ${SEQ}, ${TOKENS} tokens per row`,
    `compile ${compileMs.toFixed(0)} ms, warm-up (first dispatch of every pipeline) ${warmMs.toFixed(0)} ms`,
  ],
});
executor.destroy();
