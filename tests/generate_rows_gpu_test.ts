/**
 * Following a two-image row template on a compiled (random-init) model, on the GPU: the KV-cached
 * entries (prefill / decode / denoise_span) give what re-running whole rows (logits / denoise) gives,
 * for rows with a given caption, a written text slot between the images and both images drawn with
 * guidance, and for a row whose first image is given (committed into the cache mid-row). One
 * executor holds every entry: lavapipe compiles a pipeline at its first dispatch, most of the time.
 */
import assert from "node:assert/strict";
import { compile } from "../compiler/mod.ts";
import { image, row, text, transfusion, transfusionConfig } from "../spec/transfusion/mod.ts";
import { Executor } from "../runtime/executor.ts";
import { followRows, templateSteps } from "../runtime/generate/follow.ts";
import { uncachedModel } from "../runtime/generate/sequence_model.ts";
import { cachedModel } from "../runtime/generate/cached_model.ts";

const options = {
  backbone: { dim: 32, depth: 1, heads: 2, hidden: 64, initStd: 0.3 }, // wide init: well-separated logits
  text: { vocab: 261, captionLength: 3 },
  image: { size: 4, channels: 1, patch: 2 },
  diffusion: { schedule: "cosine", T: 100, target: "eps", noiseLimit: 50 },
  row: row(text("caption", 3), image("first"), text("between", 3), image("second")),
} as const;
const config = transfusionConfig(options).config;
const ENTRIES = ["logits", "denoise", "prefill", "decode", "denoise_span"];
const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

Deno.test({
  name: "a two-image row template, cached and uncached, on a compiled model",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    assert.equal(config.seq, 19);
    const plan = compile(transfusion(options), {
      dims: { batch: 4, seq: 19 },
      entries: ENTRIES,
      verify: true,
    });
    const executor = await Executor.create(plan, { seed: 5 });
    const tokenizer = uncachedModel(executor, config).geometry.tokenizer;
    const given = Float32Array.from({ length: 16 }, (_, i) => Math.sin(1 + i * 0.7) * 0.8);
    const request = {
      rows: [
        { steps: templateSteps(config.row!, { caption: "a3" }, tokenizer), id: 0 },
        { steps: templateSteps(config.row!, { caption: "b", first: given }, tokenizer), id: 1 },
      ],
      seed: 3,
      text: { temperature: 0.8 },
      image: { method: "ddim" as const, steps: 3, cfg: 2 },
    };
    const slow = await followRows(uncachedModel(executor, config), request);
    const fast = await followRows(cachedModel(executor, config), request);
    for (const [r, spans] of slow.entries()) {
      assert.deepEqual(spans.map((s) => s.name), ["caption", "first", "between", "second"]);
      spans.forEach((s, k) => {
        const c = fast[r]![k]!;
        if (s.kind === "text") {
          assert.deepEqual(c, s, `row ${r} ${s.name}`);
          return;
        }
        assert.ok(c.kind === "image" && maxDiff(c.pixels, s.pixels) < 1e-4, `row ${r} ${s.name}`);
      });
    }
    const pixels = (r: number, k: number) => (slow[r]![k] as { pixels: Float32Array }).pixels;
    assert.equal(pixels(1, 1), given, "the given image is kept as given");
    assert.ok(maxDiff(pixels(0, 1), pixels(0, 3)) > 1e-3, "the two images of a row differ");
    assert.ok(maxDiff(pixels(0, 3), pixels(1, 3)) > 1e-3, "rows differ");
    executor.destroy();
  },
});
