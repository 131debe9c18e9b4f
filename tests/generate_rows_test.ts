/**
 * Following a row template (runtime/generate/follow.ts) over a scripted SequenceModel (no GPU): two
 * images with text between come out in order, each drawn after exactly the row training lays out
 * before it; given texts are written in as slots, open slots are sampled and padded after EOS;
 * given images are placed clean and not drawn; rows come out the same alone or together; rows that
 * cannot fit are refused before any model call.
 */
import assert from "node:assert/strict";
import { image, layOutRows, row, text, transfusionConfig } from "../spec/transfusion/mod.ts";
import type { TransfusionConfig } from "../spec/transfusion/config.ts";
import { diffusionSchedule } from "../spec/transfusion/schedule.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { followRows, templateSteps } from "../runtime/generate/follow.ts";
import { matchRow, parseRowSpec } from "../runtime/generate/row_prompt.ts";
import { type Row, rowGeometry } from "../runtime/generate/rows.ts";
import type { SequenceModel } from "../runtime/generate/sequence_model.ts";

const template = row(text("caption", 3), image("first"), text("between", 3), image("second"));
const config: TransfusionConfig = transfusionConfig({
  text: { vocab: 261, captionLength: 3 },
  image: { size: 4, channels: 1, patch: 2 },
  diffusion: { schedule: "cosine", T: 50, target: "eps", noiseLimit: 25 },
  row: template,
}).config;
const g = rowGeometry(config);
const alphaBar = diffusionSchedule(config.diffusion).alphaBar;
const ch = (s: string) => s.charCodeAt(0);

/** A smooth image in [-0.5, 0.5] that depends on `k`. */
const picture = (k: number) => Float32Array.from({ length: g.pixels }, (_, i) => 0.5 * Math.sin(1 + i * k));
const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/**
 * After "a" the model writes "b", then EOS; after anything else "a". It denoises an image towards
 * picture(number of tokens before its BOI), so each image says where it was drawn.
 */
function scriptedModel(batch = 8) {
  const log = { denoised: [] as Row[], scored: 0 };
  const model: SequenceModel = {
    config,
    batch,
    geometry: g,
    reset: () => {},
    nextScores(rows) {
      log.scored++;
      const out = new Float32Array(rows.length * g.vocab);
      rows.forEach((r, b) => {
        if (!r) return;
        const last = r.tokens[r.tokens.length - 1]!;
        out[b * g.vocab + (last === ch("a") ? ch("b") : last === ch("b") ? SPECIAL.eos : ch("a"))] = 10;
      });
      return Promise.resolve(out);
    },
    denoise(rows, xt, t) {
      const [a, s] = [Math.sqrt(alphaBar[t]!), Math.sqrt(1 - alphaBar[t]!)];
      const out = new Float32Array(rows.length * g.pixels);
      rows.forEach((r, b) => {
        if (!r) return;
        if (t === alphaBar.length - 1 || log.denoised.length === 0) log.denoised.push(r);
        const c = picture(r.images[r.images.length - 1]!.start - 1);
        for (let i = 0; i < g.pixels; i++) out[b * g.pixels + i] = (xt[b * g.pixels + i]! - a * c[i]!) / s;
      });
      return Promise.resolve(out);
    },
    commit: () => Promise.resolve(),
  };
  return { model, log };
}

const sampling = { seed: 4, image: { steps: 6, cfg: 0 } };

Deno.test("two images with text between: given caption, written text, both images drawn in place", async () => {
  const { model, log } = scriptedModel();
  const steps = templateSteps(template, { caption: "x" }, g.tokenizer);
  const [spans] = await followRows(model, { rows: [{ steps }], ...sampling });
  assert.deepEqual(spans!.map((s) => [s.kind, s.name]), [
    ["text", "caption"],
    ["image", "first"],
    ["text", "between"],
    ["image", "second"],
  ]);
  const [caption, first, between, second] = spans!;
  assert.deepEqual(caption, {
    kind: "text",
    name: "caption",
    text: "x",
    ids: [ch("x"), SPECIAL.eos, SPECIAL.pad],
    written: false,
  });
  // After EOI the model writes "a", "b", EOS: a full slot of 3 (no padding needed).
  assert.deepEqual(between, {
    kind: "text",
    name: "between",
    text: "ab",
    ids: [ch("a"), ch("b"), SPECIAL.eos],
    written: true,
  });
  // BOI of the first image is position 4 (BOS x EOS PAD BOI), of the second 4 + 6 + 3 = 13.
  assert.ok(first?.kind === "image" && maxDiff(first.pixels, picture(4)) < 1e-3);
  assert.ok(second?.kind === "image" && maxDiff(second.pixels, picture(13)) < 1e-3);
  // The row the second image was drawn after is the training row's prefix, position for position.
  const laid = layOutRows(
    [{ template, texts: { caption: "x", between: [ch("a"), ch("b"), SPECIAL.eos] } }],
    g,
  );
  const drawnAfter = log.denoised.at(-1)!.tokens;
  assert.deepEqual(drawnAfter.slice(0, 14), [...laid.tokens.subarray(0, 14)]);
});

Deno.test("open slots are padded after EOS; given images are placed, not drawn", async () => {
  const { model, log } = scriptedModel();
  const given = picture(0.3);
  const short = row(image("shown"), text("caption", 5));
  const steps = templateSteps(short, { shown: given }, g.tokenizer);
  const [spans] = await followRows(model, { rows: [{ steps }], ...sampling });
  assert.equal(log.denoised.length, 0, "a given image is not denoised");
  assert.deepEqual(spans![0], { kind: "image", name: "shown", pixels: given, drawn: false });
  // The model writes a, b, EOS; the slot's last two positions are padding, written in (3 samples).
  assert.deepEqual(spans![1], {
    kind: "text",
    name: "caption",
    text: "ab",
    ids: [ch("a"), ch("b"), SPECIAL.eos, SPECIAL.pad, SPECIAL.pad],
    written: true,
  });
  assert.equal(log.scored, 3);
});

Deno.test("rows come out the same alone or together (DDPM noise, sampled text)", async () => {
  const request = (ids: number[]) => ({
    rows: ids.map((id) => ({ steps: templateSteps(template, {}, g.tokenizer), id })),
    seed: 9,
    text: { temperature: 1 },
    image: { steps: 5, cfg: 0, method: "ddpm" as const },
  });
  const together = await followRows(scriptedModel().model, request([3, 7]));
  const alone = await followRows(scriptedModel().model, request([7]));
  assert.deepEqual(together[1], alone[0]);
  assert.notDeepEqual(together[0], together[1]);
});

Deno.test("rows that cannot fit are refused before any model call", async () => {
  const { model, log } = scriptedModel(2);
  const steps = templateSteps(template, {}, g.tokenizer);
  await assert.rejects(
    followRows(model, { rows: [{ steps }, { steps }], seed: 0, image: { steps: 2, cfg: 3 } }),
    /2 rows with guidance need 4 model rows; the model has 2/,
  );
  const long = row(text("a", 30), image());
  await assert.rejects(
    followRows(model, { rows: [{ steps: templateSteps(long, {}, g.tokenizer) }], ...sampling }),
    /row 0 takes 37 positions; the model's rows hold 19 \(seq\)/,
  );
  assert.throws(() => templateSteps(template, { captoin: "x" }, g.tokenizer), /has no text slot "captoin"/);
  assert.throws(() => templateSteps(template, { caption: "toolong" }, g.tokenizer), /slot holds 3/);
  assert.equal(log.scored, 0);
});

Deno.test("--row lines: spans in order or by name, matched to the template, refused by name", () => {
  assert.deepEqual(parseRowSpec('text:"a 3" image text:"and a \\"7\\"" image:d.png text'), [
    { kind: "text", text: "a 3" },
    { kind: "image" },
    { kind: "text", text: 'and a "7"' },
    { kind: "image", file: "d.png" },
    { kind: "text" },
  ]);
  assert.deepEqual(matchRow(parseRowSpec('text:"a 3" image text image:d.png'), template), {
    texts: { caption: "a 3" },
    images: { second: "d.png" },
  });
  assert.deepEqual(matchRow(parseRowSpec('between:"and a 7"'), template), {
    texts: { between: "and a 7" },
    images: {},
  });
  assert.throws(
    () => matchRow(parseRowSpec('text:"a 3" image'), template),
    /--row has 2 span\(s\) \(text image\); the run's row template has 4: text:caption\(3\) image:first/,
  );
  assert.throws(
    () => matchRow(parseRowSpec("image image text image"), template),
    /span 1 is image, but the template's span 1 is text "caption"/,
  );
  assert.throws(() => matchRow(parseRowSpec('betwen:"x"'), template), /no span "betwen"/);
  assert.throws(() => parseRowSpec('text:"open'), /cannot read "text:\\"open"/);
});
