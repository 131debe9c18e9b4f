/**
 * Row templates (spec/transfusion/rows.ts, row_view.ts) against hand-drawn rows: every layout field
 * per position, the dense attention mask, the LM target positions and the image flags, for a
 * caption-first row with a 2x2 image, two images with text between, and an image-first row; the
 * presets reproduce sequence.ts's rows; a spec's template sets its image slots and seq; bad
 * templates are refused by name.
 */
import assert from "node:assert/strict";
import {
  assembleBatch,
  assembleTemplateBatch,
  captionFirstRow,
  image,
  imageFirstRow,
  layOutRows,
  row,
  rowView,
  text,
  transfusionConfig,
} from "../spec/transfusion/mod.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { ByteTokenizer } from "../runtime/tokenizer.ts";

const [BOS, EOS, BOI, EOI, PAD] = [SPECIAL.bos, SPECIAL.eos, SPECIAL.boi, SPECIAL.eoi, SPECIAL.pad];
const ch = (s: string) => s.charCodeAt(0);

/** Sizes of the hand-drawn rows: grid 1 (P = 1) or grid 2 (P = 4). */
const sizes = (grid: number, seq: number, imagesPerRow = 2) => ({
  text: { vocab: 261, captionLength: 1 },
  image: { size: grid, channels: 1, patch: 1, imagesPerRow },
  seq,
  loss: { boiTarget: true },
});

/** "10110" -> [1, 0, 1, 1, 0]; a hand-drawn mask is one such string per query row. */
const bits = (rows: string[]) => Uint8Array.from(rows.join("").split(""), Number);

Deno.test("caption-first with a 2x2 image: fields, mask (bidirectional inside the image), LM targets", () => {
  const v = rowView(row(text("caption", 1), image()), sizes(2, 8, 1), { caption: "c" });
  //                   BOS  c     BOI  p0 p1 p2 p3 EOI
  assert.deepEqual([...v.tokens], [BOS, ch("c"), BOI, 0, 0, 0, 0, EOI]);
  assert.deepEqual([...v.fields.doc], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...v.fields.modality], [0, 0, 0, 1, 1, 1, 1, 0]);
  assert.deepEqual([...v.fields.span], [-1, -1, -1, 0, 0, 0, 0, -1]);
  assert.deepEqual([...v.fields.pos], [0, 1, 2, 0, 1, 2, 3, 7]);
  assert.deepEqual([...v.fields.row], [0, 0, 0, 0, 0, 1, 1, 0]);
  assert.deepEqual([...v.fields.col], [0, 0, 0, 0, 1, 0, 1, 0]);
  assert.deepEqual(
    v.mask,
    bits([
      "10000000",
      "11000000",
      "11100000",
      "11111110", // patches see every patch of their image, later ones too
      "11111110",
      "11111110",
      "11111110",
      "11111111",
    ]),
  );
  // BOS -> c, c -> BOI (boiTarget), the last patch -> EOI; BOI (patches next) and EOI (end) do not.
  assert.deepEqual([...v.lmTargets], [1, 1, 0, 0, 0, 0, 1, 0]);
  assert.deepEqual(v.images, [{
    name: "image1",
    slot: 0,
    start: 2,
    end: 8,
    diffusion: true,
    noiseLimited: false,
  }]);
});

Deno.test("two images with text between: fields, mask, LM targets, padding", () => {
  const template = row(text("a", 1), image("first"), text("b", 1), image("second"));
  const v = rowView(template, sizes(1, 10), { a: "x", b: "y" });
  //  0    1       2    3  4    5       6    7  8    9
  // BOS   x      BOI   p EOI   y      BOI   p EOI  pad
  assert.equal(v.length, 9);
  assert.deepEqual([...v.tokens], [BOS, ch("x"), BOI, 0, EOI, ch("y"), BOI, 0, EOI, PAD]);
  assert.deepEqual([...v.fields.doc], [0, 0, 0, 0, 0, 0, 0, 0, 0, -1]);
  assert.deepEqual([...v.fields.modality], [0, 0, 0, 1, 0, 0, 0, 1, 0, -1]);
  assert.deepEqual([...v.fields.span], [-1, -1, -1, 0, -1, -1, -1, 1, -1, -1]);
  assert.deepEqual([...v.fields.pos], [0, 1, 2, 0, 4, 5, 6, 0, 8, 0]);
  assert.deepEqual(
    v.mask,
    bits([
      "1000000000",
      "1100000000",
      "1110000000",
      "1111000000",
      "1111100000",
      "1111110000",
      "1111111000",
      "1111111100",
      "1111111110",
      "0000000000", // padding sees nothing
    ]),
  );
  assert.deepEqual([...v.lmTargets], [1, 1, 0, 1, 1, 1, 0, 1, 0, 0]);
  const noBoi = rowView(template, { ...sizes(1, 10), loss: { boiTarget: false } }, { a: "x", b: "y" });
  assert.deepEqual([...noBoi.lmTargets], [1, 0, 0, 1, 1, 0, 0, 1, 0, 0]);
  assert.deepEqual(v.images.map((i) => [i.name, i.slot, i.start, i.end]), [["first", 0, 2, 5], [
    "second",
    1,
    6,
    9,
  ]]);
  assert.deepEqual(v.spans.map((s) => [s.span.name, s.start, s.end]), [
    ["a", 1, 2],
    ["first", 2, 5],
    ["b", 5, 6],
    ["second", 6, 9],
  ]);
});

Deno.test("image-first: the image is noise-limited only while a text slot follows it", () => {
  const template = imageFirstRow(2, 1);
  const v = rowView(template, sizes(1, 7, 1), { caption: "z" });
  //                               BOS  BOI  p  EOI   z     EOS  (pad)
  assert.deepEqual([...v.tokens], [BOS, BOI, 0, EOI, ch("z"), EOS, PAD]);
  assert.deepEqual([...v.lmTargets], [1, 0, 1, 1, 1, 0, 0]);
  assert.equal(v.images[0]!.noiseLimited, true);
  const dropped = rowView(template, sizes(1, 7, 1), { caption: null });
  assert.deepEqual([...dropped.tokens], [BOS, BOI, 0, EOI, PAD, PAD, PAD]);
  assert.equal(dropped.images[0]!.noiseLimited, false);
  // limitNoise on the first of two images: the text between counts as "a text slot follows".
  const two = rowView(
    row(text("a", 1), image("", { limitNoise: true }), text("b", 1), image("", { limitNoise: true })),
    sizes(1, 9),
    { a: "x", b: "y" },
  );
  assert.deepEqual(two.images.map((i) => i.noiseLimited), [true, false]);
});

Deno.test("the presets are the rows sequence.ts assembled (caption-first, image-first, dropped)", () => {
  const cfg = { ...sizes(2, 20), text: { vocab: 261, captionLength: 4 } };
  const imgs = [Float32Array.from({ length: 4 }, (_, i) => i / 4), new Float32Array(4).fill(-0.5)];
  for (const order of ["caption-first", "image-first"] as const) {
    for (const caption of ["ab", undefined]) {
      const old = assembleBatch([{ caption, images: imgs, order }], cfg).inputs;
      const template = order === "caption-first" ? captionFirstRow(4, 2) : imageFirstRow(4, 2);
      const made =
        assembleTemplateBatch([{ texts: { caption: caption ?? null }, images: imgs }], cfg, template)
          .inputs;
      assert.deepEqual(made, old, `${order}, caption ${caption}`);
    }
  }
});

Deno.test("a batch of two-image rows: patch positions, image flags, truncation counted", () => {
  const template = row(text("a", 2), image(), text("b", 1), image());
  const g = {
    seq: 12,
    N: 2,
    P: 1,
    grid: 1,
    tokenizer: new ByteTokenizer({ pad: true }),
  };
  const laid = layOutRows([
    { template, texts: { a: "hi", b: "c" } }, // "hi" fills the slot: EOS dropped, not counted
    { template, texts: { a: "long", b: null } },
  ], g);
  assert.deepEqual([...laid.patchPos], [4, 8, 4, 7]);
  assert.deepEqual([...laid.imageValid], [1, 1, 1, 1]);
  assert.deepEqual(laid.truncated, [0, 2]);
  assert.deepEqual([...laid.tokens.subarray(12, 20)], [BOS, ch("l"), ch("o"), BOI, 0, EOI, BOI, 0]);
});

Deno.test("a spec's row template sets its image slots and seq; without one the config is unchanged", () => {
  const template = row(text("caption", 6), image(), text("between", 3), image());
  const { config } = transfusionConfig({ image: { size: 4, patch: 2 }, row: template });
  assert.equal(config.image.imagesPerRow, 2);
  assert.equal(config.seq, 1 + 6 + 6 + 3 + 6);
  assert.deepEqual(config.row, template);
  const plain = transfusionConfig({ image: { size: 4, patch: 2 } }).config;
  assert.equal("row" in plain, false);
  assert.equal(plain.seq, 1 + 24 + 6);
});

Deno.test("bad templates are refused with the span and the template", () => {
  assert.throws(() => row(text("a", 2), text("a", 1)), /the name "a" is used twice/);
  assert.throws(() => row(text("a", 0)), /text "a" has length 0/);
  assert.throws(
    () => transfusionConfig({ row: row(text("c", 2), image()), seq: 3 }),
    /option "seq" = 3: must be >= the row template's 69 positions/,
  );
  assert.throws(
    () => transfusionConfig({ row: row(image(), image()), image: { imagesPerRow: 1 } }),
    /imagesPerRow.*must be >= the 2 images of the row template/,
  );
  const template = row(text("a", 2), image());
  assert.throws(
    () =>
      layOutRows([{ template, texts: {} }], { seq: 8, N: 1, P: 1, grid: 1, tokenizer: new ByteTokenizer() }),
    /row 0: no text for slot "a".*template text:a\(2\) image:image1/,
  );
});
