import assert from "node:assert/strict";
import { LAYOUT_FIELDS } from "../compiler/ir/mask.ts";
import {
  assembleBatch,
  assembleRow,
  captionBatch,
  type Example,
  promptBatch,
  type SequenceConfig,
} from "../spec/transfusion/sequence.ts";

const [BOS, EOS, BOI, EOI, PAD] = [256, 257, 258, 259, 260];
const T1: SequenceConfig = {
  text: { captionLength: 24, vocab: 260 },
  image: { size: 32, channels: 1, patch: 4, imagesPerRow: 1 },
  seq: 91,
};
const PIXELS = 32 * 32;
const bytes = (s: string) => Array.from(new TextEncoder().encode(s));
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const image = (v: number, n = PIXELS) => new Float32Array(n).fill(v);
const LAYOUT_NAMES = LAYOUT_FIELDS.map((f) => `layout_${f}`);

/**
 * The layout invariants of assembled rows: one document then padding; patch_pos points at the
 * image's patches (modality 1, its span, pos p, row/col of p) between BOI and EOI; absent slots -1.
 */
function checkRows(x: Record<string, ArrayLike<number>>, B: number, seq: number, N: number, grid: number) {
  const P = grid * grid;
  const at = (name: string, i: number) => x[name]![i]!;
  for (let b = 0; b < B; b++) {
    let ended = false;
    for (let i = 0; i < seq; i++) {
      const doc = at("layout_doc", b * seq + i);
      if (doc === -1) ended = true;
      else assert.ok(doc === 0 && !ended, `row ${b} position ${i}: doc ${doc} after padding or not 0`);
      if (doc === -1) assert.equal(at("layout_modality", b * seq + i), -1);
    }
    let patches = 0;
    for (let n = 0; n < N; n++) {
      const valid = at("image_valid", b * N + n);
      for (let p = 0; p < P; p++) {
        const q = at("patch_pos", (b * N + n) * P + p);
        if (valid === 0) {
          assert.equal(q, -1, `row ${b} slot ${n}: absent image with patch_pos ${q}`);
          continue;
        }
        const f = (name: string) => at(name, b * seq + q);
        assert.deepEqual(
          [
            f("layout_modality"),
            f("layout_span"),
            f("layout_pos"),
            f("layout_row"),
            f("layout_col"),
            f("tokens"),
          ],
          [1, n, p, Math.floor(p / grid), p % grid, 0],
          `row ${b} slot ${n} patch ${p} at ${q}`,
        );
        if (p === 0) assert.equal(at("tokens", b * seq + q - 1), BOI);
        if (p === P - 1) assert.equal(at("tokens", b * seq + q + 1), EOI);
        patches++;
      }
    }
    const images = range(0, seq).filter((i) => at("layout_modality", b * seq + i) === 1).length;
    assert.equal(images, patches, `row ${b}: patch positions not covered by patch_pos`);
  }
}

Deno.test("a T1 caption-first row, position by position", () => {
  const caption = "a handwritten digit 7";
  const row = assembleRow({ caption, images: [image(0.5)], order: "caption-first" }, T1);
  const text = [BOS, ...bytes(caption), EOS, EOS, EOS];
  assert.equal(text.length, 25);
  assert.deepEqual(Array.from(row.tokens), [...text, BOI, ...Array(64).fill(0), EOI]);
  const patches = range(0, 64);
  assert.deepEqual(Array.from(row.fields.doc), Array(91).fill(0));
  assert.deepEqual(Array.from(row.fields.modality), [...Array(26).fill(0), ...Array(64).fill(1), 0]);
  assert.deepEqual(Array.from(row.fields.span), [...Array(26).fill(-1), ...Array(64).fill(0), -1]);
  assert.deepEqual(Array.from(row.fields.pos), [...range(0, 26), ...patches, 90]);
  assert.deepEqual(Array.from(row.fields.row), [...Array(26).fill(0), ...patches.map((p) => p >> 3), 0]);
  assert.deepEqual(Array.from(row.fields.col), [...Array(26).fill(0), ...patches.map((p) => p % 8), 0]);
  assert.deepEqual(Array.from(row.patchPos), patches.map((p) => 26 + p));
  assert.deepEqual([...row.imageValid, ...row.imageFirst, row.truncated], [1, 0, 0]);
});

Deno.test("an image-first row: the caption follows EOI and the image is noise-limited", () => {
  const row = assembleRow({ caption: "7", images: [image(0)], order: "image-first" }, T1);
  const caption = [55, ...Array(23).fill(EOS)];
  assert.deepEqual(Array.from(row.tokens), [BOS, BOI, ...Array(64).fill(0), EOI, ...caption]);
  assert.deepEqual(Array.from(row.patchPos), range(2, 66));
  assert.deepEqual(Array.from(row.fields.pos.slice(66)), range(66, 91));
  assert.deepEqual([...row.imageValid, ...row.imageFirst], [1, 1]);
});

Deno.test("an unconditional row has no caption slot and ends in padding", async (t) => {
  for (const order of ["caption-first", "image-first"] as const) {
    await t.step(order, () => {
      const row = assembleRow({ images: [image(0)], order }, T1);
      assert.deepEqual(Array.from(row.tokens), [BOS, BOI, ...Array(64).fill(0), EOI, ...Array(24).fill(EOS)]);
      assert.deepEqual(Array.from(row.fields.doc), [...Array(67).fill(0), ...Array(24).fill(-1)]);
      assert.deepEqual(Array.from(row.patchPos), range(2, 66));
      assert.deepEqual([...row.imageValid, ...row.imageFirst, row.truncated], [1, 0, 0]);
    });
  }
});

Deno.test("with a PAD token the caption ends in EOS, then PAD", () => {
  const cfg = { ...T1, text: { captionLength: 4, vocab: 261 }, seq: 80 };
  const row = assembleRow({ caption: "7", images: [image(0)], order: "caption-first" }, cfg);
  assert.deepEqual(Array.from(row.tokens.slice(0, 6)), [BOS, 55, EOS, PAD, PAD, BOI]);
  assert.deepEqual(Array.from(row.tokens.slice(71)), Array(9).fill(PAD));
});

Deno.test("truncation is counted, never silent", () => {
  const long = "x".repeat(30);
  const row = assembleRow({ caption: long, images: [image(0)], order: "caption-first" }, T1);
  assert.equal(row.truncated, 6);
  assert.deepEqual(Array.from(row.tokens.slice(1, 26)), [...Array(24).fill(120), BOI]);
  const exact = assembleRow({ caption: "y".repeat(24), images: [], order: "caption-first" }, T1);
  assert.equal(exact.truncated, 0, "only the terminating EOS is dropped");
  const utf8 = assembleRow({ caption: "é".repeat(13), images: [], order: "image-first" }, T1);
  assert.equal(utf8.truncated, 2, "counted in bytes");
  const examples: Example[] = [long, "7", "z".repeat(25)].map((caption) => ({
    caption,
    images: [image(0)],
    order: "caption-first",
  }));
  assert.equal(assembleBatch(examples, T1).truncated, 2);
});

Deno.test("a T1 loss batch has exactly the contract's inputs and shapes", () => {
  const B = 32;
  const examples = range(0, B).map((b): Example => ({
    caption: b % 10 === 0 ? undefined : `digit ${b}`,
    images: [image(b / 32)],
    order: b % 5 === 0 ? "image-first" : "caption-first",
  }));
  const { inputs, truncated } = assembleBatch(examples, T1);
  const sizes = Object.fromEntries(
    Object.entries(inputs).map(([k, v]) => [k, [v.constructor.name, v.length]]),
  );
  const i32 = (n: number) => ["Int32Array", n];
  const f32 = (n: number) => ["Float32Array", n];
  assert.deepEqual(sizes, {
    tokens: i32(B * 91),
    ...Object.fromEntries(LAYOUT_NAMES.map((n) => [n, i32(B * 91)])),
    images: f32(B * 1 * 1 * 32 * 32),
    patch_pos: i32(B * 1 * 64),
    image_valid: f32(B),
    image_first: f32(B),
  });
  assert.equal(truncated, 0);
  checkRows(inputs, B, 91, 1, 8);
  assert.equal(inputs.images[5 * PIXELS + 7], 5 / 32);
  assert.deepEqual(Array.from(inputs.image_first.slice(0, 6)), [0, 0, 0, 0, 0, 1], "row 0 is unconditional");
});

Deno.test("rows with fewer images than slots", () => {
  const cfg = { ...T1, image: { ...T1.image, imagesPerRow: 2 }, seq: 160 };
  const examples: Example[] = [
    { caption: "two", images: [image(0.25), image(-0.5)], order: "caption-first" },
    { caption: "one", images: [image(0.75)], order: "image-first" },
  ];
  const { inputs } = assembleBatch(examples, cfg);
  checkRows(inputs, 2, 160, 2, 8);
  assert.deepEqual(Array.from(inputs.image_valid), [1, 1, 1, 0]);
  assert.deepEqual(Array.from(inputs.image_first), [0, 0, 1, 0]);
  assert.equal(inputs.patch_pos[64], 26 + 66, "the second image follows the first one's EOI");
  assert.equal(inputs.tokens[160 + 67], "o".charCodeAt(0), "row 1's caption follows its one image");
  assert.deepEqual([inputs.images[PIXELS], inputs.images[3 * PIXELS]], [-0.5, 0]);
});

Deno.test("promptBatch lays out caption-first rows around the given x_t", () => {
  const B = 3;
  const xt = Float32Array.from({ length: B * PIXELS }, (_, i) => i);
  const t = Float32Array.from([999, 500, 0]);
  const { inputs, truncated } = promptBatch(["7", undefined, "q".repeat(26)], xt, t, T1);
  assert.deepEqual(
    Object.keys(inputs).sort(),
    ["tokens", ...LAYOUT_NAMES, "x_t", "t", "patch_pos", "image_valid"].sort(),
  );
  assert.equal(inputs.x_t, xt);
  assert.equal(inputs.t, t);
  assert.equal(truncated, 1);
  checkRows(inputs, B, 91, 1, 8);
  const trained = assembleRow({ caption: "7", images: [image(0)], order: "caption-first" }, T1);
  assert.deepEqual(Array.from(inputs.tokens.slice(0, 91)), Array.from(trained.tokens));
  assert.deepEqual([inputs.tokens[91 + 1], inputs.patch_pos[64]], [BOI, 2], "row 1 is unconditional");
  assert.throws(() => promptBatch(["7"], xt, t.subarray(0, 1), T1), /x_t has 3072 values, expected .* 1024/);
  assert.throws(() => promptBatch(["7"], image(0), t, T1), /t has 3 values, expected B\*N = 1/);
});

Deno.test("captionBatch continues image-first rows and says where to read", () => {
  const generated = [[], [55], bytes("the number 7")];
  const imgs = generated.map((_, b) => image(b));
  const { inputs, readAt } = captionBatch(imgs, generated, T1);
  assert.deepEqual(
    Object.keys(inputs).sort(),
    ["tokens", ...LAYOUT_NAMES, "images", "patch_pos", "image_valid"].sort(),
  );
  assert.deepEqual(Array.from(readAt), [66, 67, 66 + 12]);
  assert.equal(inputs.tokens[66], EOI);
  assert.deepEqual(Array.from(inputs.tokens.slice(91 + 67, 91 + 69)), [55, EOS]);
  checkRows(inputs, 3, 91, 1, 8);
  assert.equal(inputs.images[2 * PIXELS], 2);
  const full = bytes("the number 7");
  const trained = assembleRow({ caption: "the number 7", images: [imgs[2]!], order: "image-first" }, T1);
  assert.deepEqual(
    Array.from(inputs.tokens.slice(2 * 91, 2 * 91 + 67 + full.length)),
    Array.from(trained.tokens.slice(0, 67 + full.length)),
    "the same prefix as a training row",
  );
  assert.throws(() => captionBatch([image(0)], [Array(25).fill(1)], T1), /25 generated ids, at most 24/);
  assert.throws(() => captionBatch([image(0)], [[260]], T1), /id 260 outside 0..259/);
  assert.throws(() => captionBatch([image(0)], [], T1), /0 generated prefixes for 1 images/);
});

Deno.test("configs and images that cannot be laid out are refused", () => {
  const row = (cfg: SequenceConfig, images = [image(0)]) =>
    assembleRow({ caption: "7", images, order: "caption-first" }, cfg);
  assert.throws(() => row({ ...T1, seq: 90 }), /needs 1 \+ 24 \+ 1 \* \(64 \+ 2\) = 91 > seq/);
  assert.throws(() => row({ ...T1, image: { ...T1.image, patch: 5 } }), /not a multiple of patch 5/);
  assert.throws(() => row({ ...T1, text: { ...T1.text, vocab: 300 } }), /vocab must be 260 .* or 261/);
  assert.throws(() => row(T1, [image(0, 100)]), /image 0 has 100 values, expected C\*H\*W = 1024/);
  assert.throws(() => row(T1, [image(0), image(0)]), /2 images; expected 0..1/);
});
