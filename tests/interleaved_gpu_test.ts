/**
 * The interleaved loop on a compiled (random-init) Transfusion model with RoPE, on the GPU:
 * - over the uncached entries it gives exactly what the existing samplers give (text-to-image with
 *   guidance = generateImages; image-first greedy text = captionImages), and rows of different
 *   lengths reaching BOI at different positions come out the same alone or together;
 * - the cached entries (prefill / decode / denoise_span, docs/kv_contract.md) give the uncached
 *   scores and predictions, so the whole loop gives the same tokens and images.
 * One executor holds every entry: lavapipe compiles a pipeline at its first dispatch, which is most of
 * this file's time.
 */
import assert from "node:assert/strict";
import { compile } from "../compiler/mod.ts";
import { transfusion, transfusionConfig } from "../spec/transfusion/mod.ts";
import type { TransfusionConfig } from "../spec/transfusion/config.ts";
import { Executor } from "../runtime/executor.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { captionImages, generateImages } from "../runtime/generate/transfusion.ts";
import type { ModelSession } from "../runtime/generate/run.ts";
import { generate } from "../runtime/generate/interleaved.ts";
import { captionPrompt, imagePrompt, type Prompt } from "../runtime/generate/prompts.ts";
import { type SequenceModel, uncachedModel } from "../runtime/generate/sequence_model.ts";
import { cachedModel } from "../runtime/generate/cached_model.ts";
import type { Row } from "../runtime/generate/rows.ts";
import { greedyToken } from "../runtime/generate/text_sampling.ts";

const options = {
  backbone: { dim: 32, depth: 2, heads: 2, hidden: 64, initStd: 0.3 }, // wide init: well-separated logits
  text: { vocab: 261, captionLength: 6 },
  image: { size: 4, channels: 1, patch: 2, imagesPerRow: 2, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 100, target: "eps", noiseLimit: 50 },
} as const;
const SEQ = 40;
const BATCH = 6;
const spec = transfusion(options);
const config: TransfusionConfig = { ...transfusionConfig(options).config, seq: SEQ };
const ENTRIES = ["logits", "denoise", "prefill", "decode", "denoise_span"];

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const image = (k: number) => Float32Array.from({ length: 16 }, (_, i) => Math.sin(1 + i * k) * 0.8);

/** Forces BOI as the next token of rows without images that are `lengths` positions long. */
function boiAt(model: SequenceModel, lengths: readonly number[]): SequenceModel {
  return {
    ...model,
    reset: () => model.reset(),
    denoise: (rows, xt, t) => model.denoise(rows, xt, t),
    commit: (rows) => model.commit(rows),
    async nextScores(rows) {
      const scores = await model.nextScores(rows);
      rows.forEach((row, b) => {
        if (row && row.images.length === 0 && lengths.includes(row.tokens.length)) {
          scores[b * model.geometry.vocab + SPECIAL.boi] = 1e4;
        }
      });
      return scores;
    },
  };
}

Deno.test({
  name: "interleaved generation on a compiled model, uncached and cached",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const plan = compile(spec, { dims: { batch: BATCH, seq: SEQ }, entries: ENTRIES, verify: true });
    const executor = await Executor.create(plan, { seed: 11 });
    const model = uncachedModel(executor, config);
    const session: ModelSession = { config, entry: () => Promise.resolve({ executor, batch: BATCH }) };

    await t.step("text-to-image with guidance equals generateImages", async () => {
      const captions = ["7", "a two"];
      const rows = await generate(model, {
        prompts: captions.map((c) => captionPrompt(c, config)),
        maxTokens: 0,
        seed: 4,
        image: { method: "ddim", steps: 3, cfg: 2.5 },
      });
      const want = await generateImages(session, captions, { method: "ddim", steps: 3, cfg: 2.5, seed: 4 });
      rows.forEach((row, i) => {
        assert.deepEqual(row.tokens, [SPECIAL.eoi]);
        assert.ok(
          maxDiff(row.images[0]!, want[i]!) < 1e-5,
          `image ${i}: ${maxDiff(row.images[0]!, want[i]!)}`,
        );
      });
      assert.ok(
        maxDiff(rows[0]!.images[0]!, rows[1]!.images[0]!) > 1e-3,
        "different prompts, different images",
      );
    });

    await t.step("image-first greedy text equals captionImages", async () => {
      const images = [image(0.3), image(1.1)];
      const rows = await generate(model, {
        prompts: images.map((img) => imagePrompt(img)),
        maxTokens: config.text.captionLength,
        seed: 1,
        image: { steps: 2, cfg: 0 },
      });
      const want = await captionImages(session, images);
      rows.forEach((row, i) => {
        // captionImages stops at any special token; the loop goes on (BOI would start an image).
        const special = row.tokens.findIndex((id) => model.geometry.tokenizer.isSpecial(id));
        const text = row.tokens.slice(0, special < 0 ? undefined : special);
        assert.equal(model.geometry.tokenizer.decode(text), want[i]);
      });
    });

    await t.step("captionImages through the cached entries gives the uncached captions", async () => {
      const images = [image(0.3), image(1.1), image(2.7)];
      const want = await captionImages(session, images);
      const cachedSession: ModelSession = {
        ...session,
        cached: () => Promise.resolve({ executor, batch: BATCH }),
      };
      assert.deepEqual(await captionImages(cachedSession, images), want);
      assert.ok(want.some((c) => c.length > 0), `some caption has text: ${JSON.stringify(want)}`);
    });

    await t.step("rows alone and together: same text and images (BOI at different positions)", async () => {
      const prompts: Prompt[] = [
        { parts: [{ text: "a" }], id: 0 },
        { parts: [{ text: "abcdef" }], id: 1 },
        { parts: [{ text: "abcdefghi" }], id: 2 },
      ];
      // Rows of 2, 7 and 10 positions reach the first forced length at 4, 8 and 12: BOI lands there.
      const forced = boiAt(model, [4, 8, 12]);
      const request = (ps: Prompt[]) => ({
        prompts: ps,
        maxTokens: 5,
        seed: 9,
        text: { temperature: 0.7, topK: 20 },
        image: { method: "ddpm" as const, steps: 3, cfg: 2 },
      });
      const together = await generate(forced, request(prompts));
      const boiAtPosition = together.map((r, i) => {
        const promptLength = 1 + (prompts[i]!.parts[0] as { text: string }).text.length;
        return promptLength + r.tokens.indexOf(SPECIAL.boi);
      });
      assert.deepEqual(boiAtPosition, [4, 8, 12]);
      for (const [i, p] of prompts.entries()) {
        const [alone] = await generate(forced, request([p]));
        assert.deepEqual(alone!.tokens, together[i]!.tokens, `row ${i}`);
        assert.equal(alone!.images.length, 1);
        assert.ok(maxDiff(alone!.images[0]!, together[i]!.images[0]!) < 1e-5);
      }
      assert.ok(together.every((r) => r.tokens.at(-1) !== SPECIAL.eoi), "text follows every image");
    });
    const cached = cachedModel(executor, config);
    const prompts: Prompt[] = [
      captionPrompt("4", config, 0),
      { parts: [{ text: "hi" }], id: 1 },
      imagePrompt(image(0.5), 2),
    ];
    const request = {
      prompts,
      maxTokens: 6,
      seed: 2,
      image: { method: "ddim" as const, steps: 3, cfg: 2 },
    };
    // "hi" gets an image mid-text; the caption prompt draws at once; the image prompt is captioned.
    const at = [5];
    await t.step("scores and predictions match call by call (prefill, decode, span, commit)", async () => {
      const g = model.geometry;
      let rows: Row[] = [
        { tokens: [SPECIAL.bos, ...g.tokenizer.encode("hi")], images: [] },
        {
          tokens: [SPECIAL.bos, SPECIAL.boi, 0, 0, 0, 0, SPECIAL.eoi],
          images: [{ start: 2, pixels: image(0.7) }],
        },
      ];
      const close = (got: Float32Array, want: Float32Array, what: string) => {
        const scale = Math.max(...want.map(Math.abs));
        assert.ok(maxDiff(got, want) <= 1e-4 * scale, `${what}: ${maxDiff(got, want)} (scale ${scale})`);
      };
      const appendGreedy = (scores: Float32Array) =>
        rows = rows.map((row, b) => ({
          tokens: [...row.tokens, greedyToken(scores.subarray(b * g.vocab, (b + 1) * g.vocab))],
          images: row.images,
        }));
      cached.reset();
      for (let k = 0; k < 3; k++) {
        const want = await model.nextScores(rows);
        close(await cached.nextScores(rows), want, `scores after ${rows[0]!.tokens.length} positions`);
        appendGreedy(want);
      }
      // Both rows draw an image now: BOI, P patches at x_t.
      rows = rows.map((row) => ({
        tokens: [...row.tokens, SPECIAL.boi, 0, 0, 0, 0],
        images: [...row.images, { start: row.tokens.length + 1, pixels: new Float32Array(g.pixels) }],
      }));
      const xt = Float32Array.from({ length: 2 * g.pixels }, (_, i) => Math.cos(i * 0.37));
      for (const time of [90, 10]) {
        close(
          await cached.denoise(rows, xt, time),
          await model.denoise(rows, xt, time),
          `prediction at t=${time}`,
        );
      }
      rows = rows.map((row, b) => ({
        tokens: [...row.tokens, SPECIAL.eoi],
        images: [...row.images.slice(0, -1), {
          ...row.images.at(-1)!,
          pixels: xt.slice(b * g.pixels, (b + 1) * g.pixels),
        }],
      }));
      await cached.commit(rows.map((row) => ({ tokens: row.tokens.slice(0, -1), images: row.images })));
      close(await cached.nextScores(rows), await model.nextScores(rows), "scores after the committed image");
    });

    await t.step("the whole loop: same tokens, images within 1e-4", async () => {
      const want = await generate(boiAt(model, at), request);
      const got = await generate(boiAt(cached, at), request);
      got.forEach((row, i) => {
        assert.deepEqual(row.tokens, want[i]!.tokens, `row ${i}`);
        assert.equal(row.images.length, want[i]!.images.length);
        row.images.forEach((img, n) => assert.ok(maxDiff(img, want[i]!.images[n]!) < 1e-4));
      });
      assert.deepEqual(got.map((r) => r.images.length), [1, 1, 0]);
    });
    executor.destroy();
  },
});
