/**
 * Training data from the user's own files (data/own_images.ts, data/own_text.ts), on the fixtures in
 * tests/fixtures/own_data (made by its make_fixtures.ts, which says how each picture is painted):
 * decoded and resized pixels against values worked out by hand, the held-out split, batches as pure
 * functions of (seed, step), packed text rows against hand-drawn layouts, and the error messages.
 */
import assert from "node:assert/strict";
import { decodePicture, jpegComponents, readPicture } from "../data/image_files.ts";
import { areaWeights, modelImage } from "../data/image_resize.ts";
import { imageCaptions, type ImageCaptionsConfig, imageFolder, imageJsonl } from "../data/own_images.ts";
import { packDocuments, textBatch, textCorpus, textFiles } from "../data/own_text.ts";
import { listDocuments } from "../data/text_documents.ts";
import { dataFromFlag, parseDataFlag } from "../data/own_data.ts";
import { SPECIAL, type Tokenizer } from "../runtime/tokenizer.ts";
import { uniform } from "../data/seeded_random.ts";
import { trainBpe } from "../runtime/bpe_train.ts";
import { segmentLength } from "../spec/layout_builder.ts";
import { interpret } from "../compiler/interpreter.ts";
import { trace } from "../spec/mod.ts";
import ownTextLm from "../examples/own_text_lm.ts";
import ownImages from "../examples/own_images.ts";

const FIXTURES = "tests/fixtures/own_data";
const IMAGES = `${FIXTURES}/images`;
const [BOS, EOS, BOI, EOI, PAD] = [SPECIAL.bos, SPECIAL.eos, SPECIAL.boi, SPECIAL.eoi, SPECIAL.pad];

/** A Transfusion-shaped config: 16x16 images in 4x4 patches, a 32-byte caption slot, seq 51. */
function config(channels: number, size = 16): ImageCaptionsConfig {
  const P = (size / 4) ** 2;
  return {
    text: { captionLength: 32, vocab: 261 },
    image: { size, channels, patch: 4, imagesPerRow: 1 },
    seq: 1 + 32 + P + 2,
    diffusion: { condDropout: 0 },
  };
}

/** Value (channel c, row y, column x) of a C*size*size model image. */
const at = (img: Float32Array, size: number, c: number, y: number, x: number) =>
  img[(c * size + y) * size + x]!;
/** 0..255 -> the model's [-1, 1]. */
const model = (v: number) => v / 127.5 - 1;
const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return assert.fail("expected an error");
}

Deno.test("decoding: PNG gray, gray+alpha, RGB, RGBA and JPEG give the painted values", () => {
  const ramp = readPicture(`${IMAGES}/gray_ramp.png`);
  assert.deepEqual([ramp.width, ramp.height, ramp.channels, ramp.stored], [32, 32, 1, "gray"]);
  assert.deepEqual(Array.from(ramp.values.subarray(0, 32)), Array.from({ length: 32 }, (_, x) => 8 * x));
  // Alpha 17x over black: 255 * 17x / 255.
  const fade = readPicture(`${IMAGES}/white_fade.png`);
  assert.equal(fade.stored, "gray+alpha");
  for (let x = 0; x < 16; x++) close(fade.values[x]!, 17 * x, 1e-4, `white_fade x=${x}`);
  const disc = readPicture(`${IMAGES}/blue_disc.png`);
  assert.deepEqual([disc.channels, disc.stored], [3, "rgba"]);
  close(disc.values[0]!, 128, 1e-4, "blue_disc corner: white at alpha 128 over black");
  const centre = (12 * 24 + 12) * 3;
  assert.deepEqual(Array.from(disc.values.subarray(centre, centre + 3)), [0, 0, 255]);
  // JPEG (quality 95): flat blocks come back within a few levels; jpeg-js does not say the components.
  const bytes = Deno.readFileSync(`${IMAGES}/yellow_half.jpg`);
  assert.equal(jpegComponents(bytes, "yellow_half.jpg"), 3);
  const yellow = decodePicture(bytes, "yellow_half.jpg");
  assert.deepEqual([yellow.width, yellow.height, yellow.channels, yellow.stored], [32, 32, 3, "rgb"]);
  for (const [y, want] of [[2, [255, 255, 0]], [29, [0, 0, 0]]] as const) {
    const i = (y * 32 + 5) * 3;
    want.forEach((v, c) => close(yellow.values[i + c]!, v, 4, `yellow_half (5, ${y}) channel ${c}`));
  }
  // The project's own PNG writer (runtime/png.ts) made checker.png: 8x8, 0/255 alternating.
  const checker = readPicture(`${FIXTURES}/checker.png`);
  assert.deepEqual(Array.from(checker.values.subarray(0, 4)), [0, 255, 0, 255]);
  assert.deepEqual(Array.from(checker.values.subarray(8, 12)), [255, 0, 255, 0]);
});

Deno.test("resizing: area means, worked out by hand", () => {
  // 32 -> 16: the mean of each 2x2 block; the ramp 8x gives 8 (2 ox + 0.5) = 16 ox + 4.
  const ramp = modelImage(readPicture(`${IMAGES}/gray_ramp.png`), 16);
  for (let ox = 0; ox < 16; ox++) close(at(ramp, 16, 0, 7, ox), model(16 * ox + 4), 1e-6, `ramp ${ox}`);
  // 20 -> 16: each output pixel covers 1.25 source columns. Columns alternate 255, 0:
  // [0, 1.25) = 255 + 0.25 * 0 -> 204; [1.25, 2.5) = 0.75 * 0 + 0.5 * 255 -> 102; then 102, 204.
  // [5, 6.25) starts on a black column: 0 + 0.25 * 255 -> 51; [6.25, 7.5): 0.75 * 255 -> 153; 153, 51.
  assert.deepEqual(areaWeights(20, 16).slice(0, 2), [[[0, 1], [1, 0.25]], [[1, 0.75], [2, 0.5]]]);
  const stripes = modelImage(readPicture(`${IMAGES}/gray_stripes.png`), 16);
  const row = Array.from({ length: 8 }, (_, x) => at(stripes, 16, 0, 3, x));
  [204, 102, 102, 204, 51, 153, 153, 51].forEach((v, x) => close(row[x]!, model(v), 1e-6, `stripes ${x}`));
  // RGB at its own size is only rescaled: R = 1 inside [4, 12)^2, -1 outside; G = B = -1.
  const red = readPicture(`${IMAGES}/red_square.png`);
  const same = modelImage(red, 16);
  assert.deepEqual([at(same, 16, 0, 4, 4), at(same, 16, 0, 3, 4), at(same, 16, 1, 8, 8)], [1, -1, -1]);
  // 16 -> 6 (8/3 px each): output 1 covers [2.667, 5.333), 4/8 of it inside [4, 12) in each axis.
  const six = modelImage(red, 6);
  close(at(six, 6, 0, 1, 1), model(255 * (1.333333 / 2.666667) ** 2), 1e-4, "red at 6x6 (1, 1)");
  close(at(six, 6, 0, 2, 2), 1, 1e-6, "red at 6x6 (2, 2)");
  // 40x24 is cropped to its centered 24x24 (columns 8..31): all green, no magenta left.
  const wide = modelImage(readPicture(`${IMAGES}/wide_green.png`), 8);
  for (let c = 0; c < 3; c++) {
    for (let x = 0; x < 8; x++) assert.equal(at(wide, 8, c, 4, x), c === 1 ? 1 : -1, `wide c=${c} x=${x}`);
  }
});

Deno.test("channels: gray into RGB, RGB to Rec. 601 luma, and strictChannels refuses", () => {
  const rgb = imageCaptions(config(3), { batch: 2 }, IMAGES);
  const ramp = rgb.examples.find((e) => e.file.endsWith("gray_ramp.png"))!.image;
  for (let c = 1; c < 3; c++) assert.deepEqual(ramp.subarray(c * 256, (c + 1) * 256), ramp.subarray(0, 256));
  const gray = imageCaptions(config(1), { batch: 2 }, IMAGES);
  const red = gray.examples.find((e) => e.file.endsWith("red_square.png"))!.image;
  assert.equal(red.length, 256);
  close(at(red, 16, 0, 8, 8), model(0.299 * 255), 1e-6, "red as gray");
  assert.match(gray.describe(), /16x16 gray \(5 of 8 converted from RGB\)/);
  assert.equal(
    errorOf(() => imageCaptions(config(3), { batch: 2 }, IMAGES, { strictChannels: true })),
    `${IMAGES}/gray_ramp.png: has 1 channel (gray), the spec's image.channels is 3 ` +
      "(strictChannels refuses converting it)",
  );
  assert.match(
    errorOf(() => imageCaptions(config(4), { batch: 2 }, IMAGES)),
    /the spec's image.channels is 4; image files give gray \(1\) or RGB \(3\)/,
  );
});

Deno.test("split: fixed by the data set, disjoint, eval batches wrap around", () => {
  const source = imageCaptions(config(1), { batch: 4 }, IMAGES, { heldOut: 0.25 });
  const held = source.examples.filter((e) => e.split === "held-out").map((e) => e.file);
  assert.equal(held.length, 2);
  assert.equal(source.examples.length, 8);
  // Another source (other options, other batch) holds out the same files; the run seed is not involved.
  const again = imageCaptions(config(3), { batch: 2 }, IMAGES, { heldOut: 0.25, captionFirst: 0 });
  assert.deepEqual(again.examples.filter((e) => e.split === "held-out").map((e) => e.file), held);
  assert.match(source.describe(), /6 train \/ 2 held-out/);
  // 2 held-out examples in batches of 4: one batch, the two repeated.
  assert.equal(source.evalBatches, 1);
  const images = source.evalBatch(0).images;
  const heldImages = source.examples.filter((e) => e.split === "held-out").map((e) => e.image);
  [0, 1, 0, 1].forEach((k, b) => assert.deepEqual(images.subarray(b * 256, (b + 1) * 256), heldImages[k]));
  assert.deepEqual(source.evalBatch(0), source.evalBatch(0));
  // No training batch ever draws a held-out image.
  const isHeld = (img: Float32Array) => heldImages.some((h) => h.every((v, i) => v === img[i]));
  for (let step = 0; step < 6; step++) {
    const x = source.batch(step, 3).images;
    for (let b = 0; b < 4; b++) {
      assert.ok(!isHeld(x.subarray(b * 256, (b + 1) * 256)), `step ${step} row ${b}`);
    }
  }
  assert.equal(imageCaptions(config(1), { batch: 4 }, IMAGES, { heldOut: 0 }).evalBatches, 0);
  assert.match(
    errorOf(() => imageCaptions(config(1), { batch: 4 }, IMAGES, { heldOut: 1 })),
    /heldOut must be/,
  );
});

Deno.test("batches: pure functions of (seed, step); an epoch shows every training image once", () => {
  const make = () => imageCaptions(config(1), { batch: 7 }, IMAGES, { captionFirst: 0.5 });
  const [a, b] = [make(), make()];
  b.batch(5, 1); // asking other steps first changes nothing
  assert.deepEqual(a.batch(2, 9), b.batch(2, 9));
  assert.notDeepEqual(a.batch(2, 9).images, a.batch(2, 10).images);
  // 7 training images, batch 7: step 0 is one whole epoch, a permutation of them.
  const train = a.examples.filter((e) => e.split === "train");
  const x = a.batch(0, 9);
  const seen = Array.from({ length: 7 }, (_, r) => {
    const img = x.images.subarray(r * 256, (r + 1) * 256);
    return train.findIndex((e) => e.image.every((v, i) => v === img[i]));
  });
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("rows: caption-first and image-first rows hold the file's caption", () => {
  const decode = (ids: ArrayLike<number>) =>
    new TextDecoder().decode(Uint8Array.from(Array.from(ids).filter((id) => id < 256)));
  const first = imageCaptions(config(1), { batch: 1 }, IMAGES, { captionFirst: 1, heldOut: 0 });
  const T = 51;
  for (let step = 0; step < 8; step++) {
    const x = first.batch(step, 0);
    const tokens = Array.from(x.tokens);
    // BOS, 32 caption slots (bytes, EOS, PAD), BOI, 16 patches, EOI.
    assert.deepEqual([tokens[0], tokens[33], tokens[50]], [BOS, BOI, EOI]);
    const caption = decode(tokens.slice(1, 33));
    const file = first.examples.find((e) => e.image.every((v, i) => v === x.images[i]))!;
    assert.equal(caption, file.caption);
    assert.equal(tokens[1 + caption.length], EOS);
  }
  const imageFirst = imageCaptions(config(1), { batch: 1 }, IMAGES, { captionFirst: 0 });
  const tokens = Array.from(imageFirst.batch(0, 0).tokens);
  assert.deepEqual([tokens[0], tokens[1], tokens[18]], [BOS, BOI, EOI]);
  assert.equal(imageFirst.batch(0, 0).image_first[0], 1);
  assert.ok(decode(tokens.slice(19, T)).length > 0);
});

Deno.test("captions longer than the slot are counted and reported", () => {
  const short = { ...config(1), text: { captionLength: 12, vocab: 261 }, seq: 1 + 12 + 18 };
  const source = imageCaptions(short, { batch: 8 }, IMAGES, { captionFirst: 1, heldOut: 0 });
  // Longer than 12 bytes: "a gray ramp from dark to light", "white and black stripes",
  // "white fading in from the left", "yellow above black".
  assert.match(source.describe(), /4 of 8 captions cut to captionLength 12 \(longest 30 bytes/);
  source.batch(0, 0);
  assert.equal(source.truncatedRows, 4);
  assert.match(
    imageCaptions(config(1), { batch: 2 }, IMAGES).describe(),
    /no caption cut \(longest 30 of 32/,
  );
});

Deno.test("JSONL pairs: paths relative to the file, as a spec's data and as --data", () => {
  const source = imageJsonl(`${FIXTURES}/pairs.jsonl`, { heldOut: 0 })(config(1), { batch: 3 });
  assert.deepEqual(source.examples.map((e) => [e.file, e.caption]), [
    [`${FIXTURES}/images/red_square.png`, "a red square"],
    [`${FIXTURES}/images/yellow_half.jpg`, "yellow above black"],
    [`${FIXTURES}/checker.png`, "a tiny checkerboard"],
  ]);
  // checker.png is 8x8: enlarged to 16, each pixel repeated 2x2.
  const checker = source.examples[2]!.image;
  assert.deepEqual([0, 1, 2, 3].map((x) => at(checker, 16, 0, 0, x)), [-1, -1, 1, 1]);
  const flag = dataFromFlag(`jsonl:${FIXTURES}/pairs.jsonl`)(config(1) as never, { batch: 3 });
  assert.match(
    flag.describe(),
    /own images \(jsonl tests\/fixtures\/own_data\/pairs.jsonl\): 2 train \/ 1 held-out/,
  );
  const folder = imageFolder(new URL(`../${IMAGES}/`, import.meta.url))(config(1), { batch: 2 });
  assert.equal(folder.examples.length, 8);
});

Deno.test("bad image data: each error names the file and the problem", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "own-data-" });
  try {
    const png = Deno.readFileSync(`${IMAGES}/red_square.png`);
    const write = (name: string, data: Uint8Array | string) =>
      typeof data === "string"
        ? Deno.writeTextFileSync(`${tmp}/${name}`, data)
        : Deno.writeFileSync(`${tmp}/${name}`, data);
    const load = (location = tmp) => errorOf(() => imageCaptions(config(1), { batch: 1 }, location));

    assert.equal(
      load(`${tmp}/nowhere`),
      `${tmp}/nowhere: the image data set cannot be read (no such file or folder)`,
    );
    assert.equal(load(), `${tmp}: holds no images (.png, .jpg, .jpeg) in 0 files`);
    write("a.png", png);
    assert.equal(load(), `${tmp}/a.png: has no caption: expected the text file ${tmp}/a.txt beside it`);
    write("a.txt", "  \n");
    assert.equal(load(), `${tmp}/a.txt: the caption file is empty`);
    write("a.txt", "a red square");
    write("b.png", "GIF89a, not a PNG");
    write("b.txt", "a picture");
    assert.equal(
      load(),
      `${tmp}/b.png: not a PNG or JPEG image (it starts with bytes 47 49 46 38; PNG starts 89 50 4e 47, JPEG ff d8)`,
    );
    write("b.png", png.subarray(0, 60));
    assert.match(load(), new RegExp(`^${tmp}/b.png: undecodable PNG \\(`));
    write("b.png", new Uint8Array(0));
    assert.equal(load(), `${tmp}/b.png: the image file is empty (0 bytes)`);
    write("b.png", Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0));
    assert.equal(
      load(),
      `${tmp}/b.png: undecodable JPEG (no frame header: the file is truncated or not a JPEG)`,
    );
    Deno.removeSync(`${tmp}/b.png`);
    write("notes.md", "not part of the data");
    assert.match(
      imageCaptions(config(1), { batch: 1 }, tmp).describe(),
      /2 other files skipped \(b.txt, notes.md\)/,
    );

    write("pairs.jsonl", `{"image": "a.png", "caption": "ok"}\n{"image": "gone.png", "caption": "x"}\n`);
    assert.equal(
      load(`${tmp}/pairs.jsonl`),
      `${tmp}/gone.png: the image of ${tmp}/pairs.jsonl:2 cannot be read (no such file or folder)`,
    );
    write("pairs.jsonl", `{"image": "a.png", "caption": "ok"}\n\n{"image": "a.png"`);
    assert.match(load(`${tmp}/pairs.jsonl`), new RegExp(`^${tmp}/pairs.jsonl:3: not JSON \\(`));
    write("pairs.jsonl", `{"image": "a.png", "caption": ""}`);
    assert.equal(
      load(`${tmp}/pairs.jsonl`),
      `${tmp}/pairs.jsonl:1: "caption" must be a non-empty string, got ""`,
    );
    write("pairs.jsonl", `{"picture": "a.png"}`);
    assert.match(load(`${tmp}/pairs.jsonl`), /pairs.jsonl:1: expected \{"image": path, "caption": text\}/);
    assert.match(
      errorOf(() => imageCaptions({ vocab: 261 } as never, { batch: 1 }, tmp)),
      /captioned images train a Transfusion spec .*this spec's config has vocab/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("text documents: paragraphs of a file, files of a folder, JSONL lines", () => {
  const paragraphs = listDocuments(`${FIXTURES}/text/paragraphs.txt`).documents;
  assert.deepEqual(paragraphs.map((d) => [d.text, d.from]), [
    ["one two", `${FIXTURES}/text/paragraphs.txt:1`],
    ["three four five\nsix", `${FIXTURES}/text/paragraphs.txt:3`],
    ["seven", `${FIXTURES}/text/paragraphs.txt:7`],
  ]);
  const folder = listDocuments(`${FIXTURES}/text/folder`).documents;
  assert.deepEqual(folder.map((d) => d.text), ["alpha", "bravo bravo", "charlie"]);
  const jsonl = listDocuments(`${FIXTURES}/text/docs.jsonl`).documents;
  assert.deepEqual(jsonl.map((d) => d.text), ["hi", "a longer document", "x", "tiny", "yo"]);
});

Deno.test("packing: documents per row, boundaries and truncation, as drawn by hand", () => {
  const doc = (n: number, first: number) => Array.from({ length: n }, (_, i) => first + i);
  const docs = [doc(3, 10), doc(4, 20), doc(2, 30), doc(10, 40), doc(5, 60)];
  // seq 8, first fit in order:  | 3 4 . | 2 . . . | 8 of 10 | 2 of 10, 5 . |
  const split = packDocuments(docs, 8, "split");
  assert.deepEqual(split.rows.map((r) => r.segments.map((s) => s.kind === "text" && s.length)), [
    [3, 4],
    [2],
    [8],
    [2, 5],
  ]);
  assert.deepEqual(split.rows[3]!.tokens, [48, 49, 60, 61, 62, 63, 64]);
  assert.deepEqual(split.packing, {
    documents: 5,
    tokens: 24,
    rows: 4,
    long: 1,
    pieces: 2,
    truncated: 0,
    droppedTokens: 0,
  });
  // Truncated: the 10 keeps its first 8, the 5 no longer fits beside it.
  const cut = packDocuments(docs, 8, "truncate");
  assert.deepEqual(cut.rows.map((r) => r.tokens.length), [7, 2, 8, 5]);
  assert.deepEqual([cut.packing.truncated, cut.packing.droppedTokens, cut.packing.pieces], [1, 2, 0]);

  // The layout of row 0: doc 0 (3 positions), doc 1 (4), one pad; pos restarts at each document.
  const x = textBatch([split.rows[0]!, split.rows[1]!], 8, PAD);
  assert.deepEqual(Array.from(x.tokens!), [10, 11, 12, 20, 21, 22, 23, PAD, 30, 31, ...Array(6).fill(PAD)]);
  assert.deepEqual(Array.from(x.layout_doc!), [0, 0, 0, 1, 1, 1, 1, -1, 0, 0, -1, -1, -1, -1, -1, -1]);
  assert.deepEqual(Array.from(x.layout_pos!).slice(0, 7), [0, 1, 2, 0, 1, 2, 3]);
  assert.deepEqual(Array.from(x.layout_modality!).slice(6, 8), [0, -1]);
});

Deno.test("text source: BOS text EOS per document, split, determinism, truncation reported", () => {
  const dims = { batch: 2, seq: 8 };
  const source = textFiles(`${FIXTURES}/text/docs.jsonl`)({ vocab: 261 }, dims);
  // 5 documents, 1 held out; the held-out one is the same for every run.
  assert.equal(source.train.packing.documents + source.heldOut.packing.documents, 5);
  assert.equal(source.heldOut.packing.documents, 1);
  const all = source.train.rows.flatMap((r) => r.tokens);
  assert.equal(all.filter((t) => t === BOS).length, 4);
  // "a longer document" + BOS + EOS = 19 ids > 8: split into 8, 8, 3.
  assert.equal(source.train.packing.long + source.heldOut.packing.long, 1);
  assert.match(source.describe(), /1 document longer than a row split into 3 pieces/);
  assert.deepEqual(
    source.batch(4, 2),
    textFiles(`${FIXTURES}/text/docs.jsonl`)({ vocab: 261 }, dims).batch(4, 2),
  );
  const x = source.batch(0, 2);
  assert.equal(x.tokens!.length, 16);
  assert.deepEqual(Object.keys(x).sort(), [
    "layout_col",
    "layout_doc",
    "layout_modality",
    "layout_pos",
    "layout_row",
    "layout_span",
    "tokens",
  ]);
  assert.equal(source.evalBatches, 1);
  const cut = textCorpus({ vocab: 261 }, dims, `${FIXTURES}/text/docs.jsonl`, {
    long: "truncate",
    heldOut: 0,
  });
  assert.match(cut.describe(), /TRUNCATED: 1 document longer than a row lost 11 tokens/);
  assert.equal(cut.train.packing.droppedTokens, 11);
  // A Transfusion-shaped config gives the vocabulary as text.vocab and its seq when dims has none.
  const tf = textCorpus({ text: { vocab: 260 }, seq: 16 }, { batch: 1 }, `${FIXTURES}/text/folder`, {
    heldOut: 0,
  });
  // "alpha" (7 ids) and "bravo bravo" (13) do not fit in one row of 16, nor "charlie" (9) after it.
  assert.deepEqual(tf.train.rows.map((r) => r.tokens.length), [7, 13, 9]);
  assert.deepEqual(tf.train.rows[0]!.tokens, [BOS, ...new TextEncoder().encode("alpha"), EOS]);
  assert.equal(Array.from(tf.batch(0, 0).tokens!).at(-1), EOS, "vocab 260 has no PAD: padding is EOS");
});

Deno.test("text source: any Tokenizer plugs in; a vocabulary too small is refused", () => {
  // A made-up word tokenizer: each word's length + 300 (ids above the byte range, as a BPE's are).
  const words: Tokenizer = {
    config: { kind: "byte", pad: true },
    vocabSize: 320,
    padId: PAD,
    encode: (text) => text.split(/\s+/).filter(Boolean).map((w) => 300 + Math.min(w.length, 19)),
    decode: () => "",
    isSpecial: (id) => id >= 256 && id <= 260,
  };
  const source = textCorpus({ vocab: 320 }, { batch: 1, seq: 8 }, `${FIXTURES}/text/paragraphs.txt`, {
    tokenizer: words,
    heldOut: 0,
  });
  // "one two" (4 ids with BOS, EOS), "three four five six" (6), "seven" (3): 4 + 6 > 8, 6 + 3 > 8.
  assert.deepEqual(source.train.rows.map((r) => r.tokens), [
    [BOS, 303, 303, EOS],
    [BOS, 305, 304, 304, 303, EOS],
    [BOS, 305, EOS],
  ]);
  assert.equal(
    errorOf(() =>
      textCorpus({ vocab: 261 }, { batch: 1, seq: 8 }, `${FIXTURES}/text/folder`, { tokenizer: words })
    ),
    `text ${FIXTURES}/text/folder: the tokenizer has 320 ids but the model's vocabulary is 261; ` +
      "raise the vocab to at least 320",
  );
});

Deno.test("bad text data and --data flags: clear errors", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "own-text-" });
  try {
    const load = (location: string) =>
      errorOf(() => textCorpus({ vocab: 261 }, { batch: 1, seq: 8 }, location));
    Deno.writeTextFileSync(`${tmp}/empty.txt`, "\n\n");
    assert.equal(load(`${tmp}/empty.txt`), `${tmp}/empty.txt: the text file is empty`);
    assert.equal(load(tmp), `${tmp}/empty.txt: the text file is empty`);
    Deno.writeTextFileSync(`${tmp}/docs.jsonl`, `{"text": "fine"}\n{"body": "no text"}\n`);
    assert.match(load(`${tmp}/docs.jsonl`), /docs.jsonl:2: expected \{"text": a non-empty string\}/);
    assert.match(load(`${tmp}/book.pdf`), /book.pdf: the text data set cannot be read \(no such file/);
    Deno.writeTextFileSync(`${tmp}/book.pdf`, "%PDF");
    assert.match(
      load(`${tmp}/book.pdf`),
      /a text data set is a .txt or .md file, a folder of them, or a .jsonl/,
    );
    assert.match(
      errorOf(() => textCorpus({}, { batch: 1, seq: 8 }, tmp)),
      /the config has no text.vocab or vocab/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  assert.deepEqual(parseDataFlag("images:./my folder"), { kind: "images", path: "./my folder" });
  assert.match(
    errorOf(() => parseDataFlag("pictures:./x")),
    /--data expects KIND:PATH with KIND one of images, jsonl, text/,
  );
  assert.match(errorOf(() => parseDataFlag("text:")), /got "text:"/);
  assert.match(errorOf(() => dataFromFlag("jsonl:./pairs.txt")), /expected a .jsonl file/);
});

Deno.test("examples/own_text_lm.ts: packed documents do not see each other (interpreter)", () => {
  const T = 16;
  const dims = { batch: 3, seq: T };
  const traced = trace(ownTextLm, { entry: "logits", dims });
  const random = uniform(11);
  const params = Object.fromEntries(traced.params.map(({ path, decl }) => {
    const n = decl.shape.reduce((a, b) => a * b, 1);
    const init = decl.init;
    const value = (): number => init.kind === "ones" ? 1 : init.kind === "zeros" ? 0 : (random() - 0.5) * 0.2; // larger than init: visible
    return [path, Float64Array.from({ length: n }, value)];
  }));
  const ids = (text: string) => [BOS, ...new TextEncoder().encode(text), EOS];
  const [first, second, changed] = [ids("abc"), ids("hello"), ids("xyz")];
  const row = (...docs: number[][]) => packDocuments(docs, T, "split").rows[0]!;
  // Row 0: two documents; row 1: the first one changed; row 2: the second one alone at the row start.
  const x = textBatch([row(first, second), row(changed, second), row(second)], T, PAD);
  const [logits] = interpret([traced.outputs.logits!], { params, inputs: x });
  const V = 261;
  const at = (b: number, t: number) => logits!.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
  const differ = (a: Float64Array, b: Float64Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  for (let t = 0; t < second.length; t++) {
    const packed = at(0, first.length + t);
    // Its logits do not depend on the document before it, nor on where in the row it starts.
    assert.ok(differ(packed, at(1, first.length + t)) < 1e-9, `second document, position ${t}`);
    assert.ok(differ(packed, at(2, t)) < 1e-9, `second document at the row start, position ${t}`);
  }
  assert.ok(differ(at(0, 1), at(1, 1)) > 1e-3, "the changed first document does change its own logits");
});

Deno.test("the examples' data fits their loss entries: every input, with its size", () => {
  for (const [spec, dims] of [[ownImages, { batch: 2 }], [ownTextLm, { batch: 2, seq: 64 }]] as const) {
    const traced = trace(spec, { dims });
    const source = spec.data!(traced.config as never, traced.dims);
    const x = source.batch(0, 0);
    const wanted = traced.inputs.filter((n) => n.arg.name !== "seed");
    assert.deepEqual(Object.keys(x).sort(), wanted.map((n) => n.arg.name).sort(), spec.name);
    for (const n of wanted) {
      assert.equal(x[n.arg.name]!.length, n.shape.reduce((a, b) => a * b, 1), `${spec.name} ${n.arg.name}`);
    }
    assert.ok(source.evalBatches! >= 1, `${spec.name} holds out a batch`);
  }
});

Deno.test("text source: a trained BPE plugs in, given or as the config's text.tokenizer", () => {
  const corpus = `${FIXTURES}/text/paragraphs.txt`;
  const texts = listDocuments(corpus).documents.map((d) => d.text);
  const bpe = trainBpe(texts, { vocab: 270, minFrequency: 1 });
  const opts = { heldOut: 0 } as const;
  const given = textCorpus({ vocab: bpe.vocabSize }, { batch: 1, seq: 16 }, corpus, {
    ...opts,
    tokenizer: bpe,
  });
  // Each document is BOS, its BPE ids (fewer than its bytes: merges), EOS, and decodes back to its text.
  const docs = given.train.rows.flatMap((r) => {
    let start = 0;
    return r.segments.map((seg) => r.tokens.slice(start, start += segmentLength(seg)));
  });
  assert.deepEqual(docs.map((ids) => bpe.decode(ids)), texts);
  assert.ok(docs.some((ids) => ids.some((id) => id > PAD)), "some ids are merges");
  assert.ok(docs.every((ids) => ids[0] === BOS && ids.at(-1) === EOS));
  const fromConfig = textCorpus(
    { text: { vocab: bpe.vocabSize, tokenizer: bpe.config } },
    { batch: 1, seq: 16 },
    corpus,
    opts,
  );
  assert.deepEqual(fromConfig.train.rows, given.train.rows);
});
