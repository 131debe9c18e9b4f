/**
 * The interleaved generation loop over a scripted SequenceModel (no GPU): text until EOS or the
 * budget; BOI starts an image drawn by the sampler, committed clean, followed by EOI and more text;
 * guidance runs each drawing row's unconditional twin (BOS BOI image) in the same call and combines
 * them as uncond + w (cond - uncond); rows come out the same alone or together; image-first prompts
 * (captioning) and the model's room. The same loop on a compiled model is in interleaved_gpu_test.ts.
 */
import assert from "node:assert/strict";
import { transfusionConfig } from "../spec/transfusion/options.ts";
import type { TransfusionConfig } from "../spec/transfusion/config.ts";
import { diffusionSchedule } from "../spec/transfusion/schedule.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { generate, type GenerationRequest } from "../runtime/generate/interleaved.ts";
import { captionPrompt, imagePrompt, type Prompt } from "../runtime/generate/prompts.ts";
import { type Row, rowGeometry } from "../runtime/generate/rows.ts";
import type { SequenceModel } from "../runtime/generate/sequence_model.ts";

const config: TransfusionConfig = {
  ...transfusionConfig({
    text: { vocab: 261, captionLength: 4 },
    image: { size: 4, channels: 1, patch: 2, imagesPerRow: 2 },
    diffusion: { schedule: "cosine", T: 50, target: "eps", noiseLimit: 25 },
  }).config,
  seq: 30,
};
const g = rowGeometry(config);
const alphaBar = diffusionSchedule(config.diffusion).alphaBar;
const ch = (s: string) => s.charCodeAt(0);

interface Script {
  /** The token the model is sure of after `row`. */
  next(row: Row): number;
  /** The clean image the model denoises `row`'s last image towards. */
  clean(row: Row): Float32Array;
}

interface Log {
  scores: (readonly (Row | undefined)[])[];
  denoise: { rows: readonly (Row | undefined)[]; t: number }[];
  commits: (readonly (Row | undefined)[])[];
}

/** A perfect eps predictor of `script.clean` and one-hot next-token scores: what the loop does is checkable. */
function scriptedModel(script: Script, batch = 8): SequenceModel & { log: Log } {
  const log: Log = { scores: [], denoise: [], commits: [] };
  return {
    config,
    batch,
    geometry: g,
    log,
    reset: () => {},
    nextScores(rows) {
      log.scores.push(rows);
      const out = new Float32Array(rows.length * g.vocab);
      rows.forEach((row, b) => row && (out[b * g.vocab + script.next(row)] = 10));
      return Promise.resolve(out);
    },
    denoise(rows, xt, t) {
      log.denoise.push({ rows, t });
      const [a, s] = [Math.sqrt(alphaBar[t]!), Math.sqrt(1 - alphaBar[t]!)];
      const out = new Float32Array(rows.length * g.pixels);
      rows.forEach((row, b) => {
        if (!row) return;
        const c = script.clean(row);
        for (let i = 0; i < g.pixels; i++) out[b * g.pixels + i] = (xt[b * g.pixels + i]! - a * c[i]!) / s;
      });
      return Promise.resolve(out);
    },
    commit(rows) {
      log.commits.push(rows);
      return Promise.resolve();
    },
  };
}

/** Text: after the prompt, the letters up to "e", then EOS; a row whose last token is EOI goes on with "z". */
const alphabet: Script = {
  next: (row) => {
    const last = row.tokens[row.tokens.length - 1]!;
    if (last === SPECIAL.eoi) return ch("z");
    return last >= ch("a") && last < ch("e") ? last + 1 : SPECIAL.eos;
  },
  clean: (row) => image(row.tokens[row.images[row.images.length - 1]!.start - 2]! / 300),
};

/** A smooth image in [-0.5, 0.5] that depends on `k`. */
const image = (k: number) => Float32Array.from({ length: g.pixels }, (_, i) => 0.5 * Math.sin(1 + i * k));
const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const request = (prompts: Prompt[], extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
  prompts,
  maxTokens: 10,
  seed: 3,
  image: { steps: 4, cfg: 0 },
  ...extra,
});

Deno.test("text: tokens until EOS or the budget", async () => {
  const [row] = await generate(scriptedModel(alphabet), request([{ parts: [{ text: "a" }] }]));
  assert.deepEqual(row!.tokens, [ch("b"), ch("c"), ch("d"), ch("e")]);
  assert.equal(row!.text, "bcde");
  assert.equal(row!.finish, "eos");
  const [cut] = await generate(
    scriptedModel(alphabet),
    request([{ parts: [{ text: "a" }] }], { maxTokens: 2 }),
  );
  assert.equal(cut!.text, "bc");
  assert.equal(cut!.finish, "budget");
});

Deno.test("BOI mid-text: an image, its commit, EOI, then text again", async () => {
  // "q", then BOI, then (after EOI) "z", then EOS.
  const script: Script = {
    next: (row) => {
      const last = row.tokens[row.tokens.length - 1]!;
      if (last === ch("a")) return ch("q");
      if (last === ch("q")) return SPECIAL.boi;
      return alphabet.next(row);
    },
    clean: alphabet.clean,
  };
  const model = scriptedModel(script);
  const [row] = await generate(model, request([{ parts: [{ text: "a" }] }]));
  assert.deepEqual(row!.tokens, [ch("q"), SPECIAL.boi, SPECIAL.eoi, ch("z")]);
  assert.equal(row!.text, "qz");
  assert.equal(row!.images.length, 1);
  assert.ok(maxDiff(row!.images[0]!, image(ch("q") / 300)) < 1e-4);
  // The image sits after BOS a q BOI; 4 DDIM steps, one model call each, then one commit of the clean image.
  assert.equal(model.log.denoise.length, 4);
  const drawn = model.log.denoise[0]!.rows[0]!;
  assert.deepEqual(drawn.tokens, [SPECIAL.bos, ch("a"), ch("q"), SPECIAL.boi, 0, 0, 0, 0]);
  assert.equal(drawn.images[0]!.start, 4);
  const committed = model.log.commits[0]![0]!;
  assert.deepEqual(committed.images[0]!.pixels, row!.images[0]);
  // Text resumes after EOI, which sees the clean image.
  const after = model.log.scores.find((rows) => rows[0]?.tokens.at(-1) === SPECIAL.eoi)![0]!;
  assert.equal(after.tokens.length, 4 + g.P + 1);
  assert.deepEqual(after.images[0]!.pixels, row!.images[0]);
});

Deno.test("guidance: the unconditional twin (BOS BOI image) runs in the same call", async () => {
  const twinImage = image(0.9);
  const script: Script = {
    next: alphabet.next,
    clean: (row) => (row.tokens.length === 2 + g.P ? twinImage : alphabet.clean(row)),
  };
  const model = scriptedModel(script);
  const w = 2;
  const prompts = [captionPrompt("ab", config), { parts: [{ text: "hello" }, { tokens: [SPECIAL.boi] }] }];
  const rows = await generate(model, request(prompts, { image: { steps: 5, cfg: w }, maxTokens: 0 }));
  assert.equal(model.log.denoise.length, 5, "one model call per step for both rows and their twins");
  for (const { rows: called } of model.log.denoise) {
    assert.equal(called.length, 4);
    for (const twin of called.slice(2)) {
      assert.deepEqual(twin!.tokens, [SPECIAL.bos, SPECIAL.boi, 0, 0, 0, 0]);
      assert.equal(twin!.images[0]!.start, 2);
    }
  }
  rows.forEach((row, b) => {
    const cond = alphabet.clean(model.log.denoise[0]!.rows[b]!);
    // DDIM's last step lands on its x0 estimate, clipped to [-1, 1].
    const want = cond.map((c, i) => Math.min(1, Math.max(-1, twinImage[i]! + w * (c - twinImage[i]!))));
    assert.ok(maxDiff(row.images[0]!, want) < 1e-3, `row ${b}: ${maxDiff(row.images[0]!, want)}`);
    assert.deepEqual(row.tokens, [SPECIAL.eoi]);
    assert.equal(row.finish, "budget");
  });
});

Deno.test("rows come out the same alone or together (different lengths, sampled text, DDPM noise)", async () => {
  // At temperature 1.5 the scripted token (score 10 vs 0) is drawn about 94% of the time among the top 50.
  const scores: Script = {
    next: (row) => {
      const n = row.tokens.length;
      if (n === 3 || n === 6) return SPECIAL.boi; // rows of different prompt lengths meet BOI at different rounds
      return ch("a") + ((row.tokens.reduce((s, t) => s + t, 0) * 7) % 20);
    },
    clean: alphabet.clean,
  };
  const prompts: Prompt[] = [
    { parts: [{ text: "x" }], id: 0 },
    { parts: [{ text: "long" }], id: 1 },
    { parts: [{ text: "mid" }], id: 2 },
  ];
  const opts: Partial<GenerationRequest> = {
    text: { temperature: 1.5, topK: 50 },
    image: { method: "ddpm", steps: 6, cfg: 1.5 },
    maxTokens: 8,
  };
  const together = await generate(scriptedModel(scores), request(prompts, opts));
  for (const [i, p] of prompts.entries()) {
    const [alone] = await generate(scriptedModel(scores), request([p], opts));
    assert.deepEqual(alone!.tokens, together[i]!.tokens);
    assert.equal(alone!.images.length, together[i]!.images.length);
    alone!.images.forEach((img, n) => assert.ok(maxDiff(img, together[i]!.images[n]!) < 1e-6));
  }
  assert.ok(together.every((r) => r.images.length >= 1), "every row drew an image");
  assert.notDeepEqual(together[0]!.images[0], together[2]!.images[0]);
});

Deno.test("image-first prompts: the clean image, EOI, then text (captioning)", async () => {
  const img = image(0.4);
  const model = scriptedModel({ next: () => ch("c"), clean: alphabet.clean });
  const [row] = await generate(model, request([imagePrompt(img)], { maxTokens: 3 }));
  assert.equal(row!.text, "ccc");
  assert.equal(row!.images.length, 0);
  const first = model.log.scores[0]![0]!;
  assert.deepEqual(first.tokens, [SPECIAL.bos, SPECIAL.boi, 0, 0, 0, 0, SPECIAL.eoi]);
  assert.equal(first.images[0]!.start, 2);
  assert.equal(first.images[0]!.pixels, img);
  assert.equal(model.log.denoise.length, 0);
});

Deno.test("a row stops when the model has no room: seq, or image slots", async () => {
  const boiAlways = scriptedModel({ next: () => SPECIAL.boi, clean: alphabet.clean });
  const [row] = await generate(boiAlways, request([{ parts: [{ text: "a" }] }], { maxTokens: 20 }));
  // Two image slots: BOI image EOI twice, then a third BOI has no slot.
  assert.deepEqual(row!.tokens, [SPECIAL.boi, SPECIAL.eoi, SPECIAL.boi, SPECIAL.eoi]);
  assert.equal(row!.images.length, 2);
  assert.equal(row!.finish, "length");
  const chatter = scriptedModel({ next: () => ch("a"), clean: alphabet.clean });
  const [long] = await generate(chatter, request([{ parts: [{ text: "a" }] }], { maxTokens: 100 }));
  assert.equal(long!.tokens.length, g.seq - 2);
  assert.equal(long!.finish, "length");
});

Deno.test("requests that cannot run are refused before any model call", async () => {
  const model = scriptedModel(alphabet, 2);
  const three = [0, 1, 2].map((i) => ({ parts: [{ text: "a" }], id: i }));
  await assert.rejects(() => generate(model, request(three)), /need 3 model rows; the model has 2/);
  const two = three.slice(0, 2);
  await assert.rejects(() => generate(model, request(two, { image: { steps: 2, cfg: 3 } })), /with guidance/);
  const tooLong = [{ parts: [{ text: "x".repeat(g.seq) }] }];
  await assert.rejects(() => generate(model, request(tooLong)), /does not fit seq/);
  await assert.rejects(() => generate(model, request([{ parts: [{ tokens: [999] }] }])), /vocabulary/);
  assert.equal(model.log.scores.length + model.log.denoise.length, 0);
});

Deno.test("flow-matching specs draw with Euler and Heun through the same loop", async () => {
  const flowConfig: TransfusionConfig = {
    ...config,
    diffusion: { ...config.diffusion, schedule: "flow", target: "velocity" },
  };
  const target = image(0.6);
  for (const method of ["euler", "heun"] as const) {
    const calls: number[] = [];
    const base = scriptedModel(alphabet);
    const model: SequenceModel = {
      ...base,
      config: flowConfig,
      // The exact velocity eps - x0 towards `target`: x_t = (1 - t) x0 + t eps.
      denoise(_rows, xt, t) {
        calls.push(t);
        return Promise.resolve(xt.map((x, i) => (x - target[i % g.pixels]!) / t));
      },
    };
    const [row] = await generate(
      model,
      request([captionPrompt("z", flowConfig)], { image: { method, steps: 4, cfg: 0 } }),
    );
    assert.ok(maxDiff(row!.images[0]!, target) < 1e-4, `${method}: ${maxDiff(row!.images[0]!, target)}`);
    assert.equal(calls.length, method === "heun" ? 7 : 4);
    assert.equal(calls[0], 1, "flow time starts at 1 (noise)");
  }
});
