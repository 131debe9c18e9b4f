import assert from "node:assert/strict";
import { checkLayoutFields, LAYOUT_FIELDS, type LayoutFields } from "../compiler/ir/mask.ts";
import { assembleRow } from "../spec/transfusion/sequence.ts";
import { loadMnist, shiftedDigit } from "../data/mnist.ts";
import {
  CAPTION_TEMPLATES,
  digitCaption,
  digitImage,
  mnistCaptions,
  type MnistCaptionsConfig,
  T1_CAPTION_TEMPLATE,
  testDigits,
} from "../data/mod.ts";
import type { Batch } from "../spec/data.ts";

const [EOS, BOI, EOI] = [257, 258, 259];
const T1: MnistCaptionsConfig = {
  text: { captionLength: 24, vocab: 260 },
  image: { size: 32, channels: 1, patch: 4, imagesPerRow: 1 },
  seq: 91,
  diffusion: { condDropout: 0.1 },
};
const DIMS = { batch: 32, seq: 91 };
const { train, test } = loadMnist();

/** The row's caption (undefined: dropped) and order, read back from its tokens. */
function readRow(x: Batch, b: number): { caption: string | undefined; imageFirst: boolean } {
  const tokens = Array.from({ length: 91 }, (_, i) => x.tokens![b * 91 + i]!);
  const imageFirst = x.image_first![b] === 1;
  const decode = (ids: number[]) => {
    const end = ids.indexOf(EOS);
    return new TextDecoder().decode(Uint8Array.from(end < 0 ? ids : ids.slice(0, end)));
  };
  const unconditional = !imageFirst && tokens[1] === BOI;
  const eoi = imageFirst || unconditional ? 66 : 90;
  assert.deepEqual([tokens[eoi - 65], tokens[eoi]], [BOI, EOI], `row ${b}: BOI and EOI`);
  if (unconditional) return { caption: undefined, imageFirst };
  return { caption: decode(imageFirst ? tokens.slice(67) : tokens.slice(1, 25)), imageFirst };
}

/** A digit image's identity, to find which train digit a row holds. */
function imageKey(img: ArrayLike<number>, offset: number, n: number): string {
  let h1 = 0x811c9dc5, h2 = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.round((img[offset + i]! + 1) * 1000);
    h1 = Math.imul(h1 ^ v, 0x01000193);
    h2 = (h2 * 31 + v) | 0;
  }
  return `${h1}:${h2}`;
}

Deno.test("captions from templates, digits as numerals and words", () => {
  assert.equal(digitCaption(7, T1_CAPTION_TEMPLATE), "a handwritten digit 7");
  assert.equal(digitCaption(3, "the number {word}"), "the number three");
  assert.equal(digitCaption(0, "{n} or {word}"), "0 or zero");
  assert.throws(() => digitCaption(10, "{n}"), /digit 10 is not 0..9/);
  assert.ok(CAPTION_TEMPLATES.length >= 3);
  assert.ok(
    CAPTION_TEMPLATES.some((t) => t.includes("{n}")) && CAPTION_TEMPLATES.some((t) => t.includes("{word}")),
  );
  for (const t of CAPTION_TEMPLATES) {
    for (let d = 0; d < 10; d++) assert.ok(digitCaption(d, t).length <= 23, `"${t}" fits T1 with its EOS`);
  }
});

Deno.test("digit images: scaled to [-1, 1], centered on a -1 background", async (t) => {
  const src = (i: number, y: number, x: number) => train.images[i * 784 + y * 28 + x]!;
  await t.step("T1: 28x28 padded by 2 to 32x32", () => {
    const img = digitImage(train, 5, { size: 32, channels: 1 });
    assert.equal(img.length, 1024);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const want = inside ? 2 * src(5, y - 2, x - 2) - 1 : -1;
        assert.ok(Math.abs(img[y * 32 + x]! - want) < 1e-6, `(${y}, ${x}): ${img[y * 32 + x]} vs ${want}`);
      }
    }
    assert.ok(img.some((v) => v > 0.5), "the digit has ink");
  });
  await t.step("14x14 by 2x2 averages, in every channel", () => {
    const img = digitImage(train, 9, { size: 14, channels: 3 });
    assert.equal(img.length, 3 * 196);
    const mean = (y: number, x: number) =>
      (src(9, 2 * y, 2 * x) + src(9, 2 * y + 1, 2 * x) + src(9, 2 * y, 2 * x + 1) +
        src(9, 2 * y + 1, 2 * x + 1)) / 4;
    for (let y = 0; y < 14; y++) {
      for (let x = 0; x < 14; x++) {
        for (let c = 0; c < 3; c++) {
          assert.ok(Math.abs(img[c * 196 + y * 14 + x]! - (2 * mean(y, x) - 1)) < 1e-6);
        }
      }
    }
  });
  await t.step("16x16: 14x14 averages with a one-pixel border", () => {
    const img = digitImage(train, 9, { size: 16, channels: 1 });
    const small = digitImage(train, 9, { size: 14, channels: 1 });
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const inside = y >= 1 && y < 15 && x >= 1 && x < 15;
        assert.equal(img[y * 16 + x], inside ? small[(y - 1) * 14 + x - 1] : -1);
      }
    }
  });
});

Deno.test("T1 batches: the contract's shapes, deterministic in (seed, step)", () => {
  const data = mnistCaptions(T1, DIMS);
  assert.equal(data.tokensPerBatch, 32 * 91);
  assert.match(data.describe(), /8495 train \/ 1505 test digits, 80% caption-first, 10% condition dropout/);
  const x = data.batch(3, 42);
  const named: Batch = x;
  const sizes = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, [v.constructor.name, v.length]]));
  assert.deepEqual(sizes, {
    tokens: ["Int32Array", 32 * 91],
    ...Object.fromEntries(LAYOUT_FIELDS.map((f) => [`layout_${f}`, ["Int32Array", 32 * 91]])),
    images: ["Float32Array", 32 * 1024],
    patch_pos: ["Int32Array", 32 * 64],
    image_valid: ["Float32Array", 32],
    image_first: ["Float32Array", 32],
  });
  assert.deepEqual(Array.from(x.image_valid), Array(32).fill(1));
  checkLayoutFields(
    Object.fromEntries(LAYOUT_FIELDS.map((f) => [f, named[`layout_${f}`]])) as unknown as LayoutFields,
    32 * 91,
  );
  for (let b = 0; b < 32; b++) {
    const { caption, imageFirst } = readRow(x, b);
    const images = [Float32Array.from(x.images.slice(b * 1024, (b + 1) * 1024))];
    const row = assembleRow({ caption, images, order: imageFirst ? "image-first" : "caption-first" }, T1);
    const cut = (k: string, n: number) => Array.from(named[k]!).slice(b * n, (b + 1) * n);
    assert.deepEqual(cut("tokens", 91), Array.from(row.tokens), `row ${b} tokens`);
    for (const f of LAYOUT_FIELDS) {
      assert.deepEqual(cut(`layout_${f}`, 91), Array.from(row.fields[f]), `row ${b} ${f}`);
    }
    assert.deepEqual(cut("patch_pos", 64), Array.from(row.patchPos), `row ${b} patch_pos`);
    assert.deepEqual(cut("image_first", 1), Array.from(row.imageFirst), `row ${b} image_first`);
  }
  const again: Batch = mnistCaptions(T1, DIMS).batch(3, 42);
  for (const k of Object.keys(x)) assert.deepEqual(again[k], named[k], `${k} repeats`);
  const differs = (y: Batch) =>
    Object.keys(x).some((k) => Array.from(y[k]!).some((v, i) => v !== named[k]![i]));
  assert.ok(differs(data.batch(4, 42)), "another step");
  assert.ok(differs(data.batch(3, 43)), "another seed");
  assert.throws(() => data.batch(-1, 0), /step must be an integer >= 0/);
});

Deno.test("training rows: one epoch is a permutation, captions match digits, 80/20 and 10% dropout", () => {
  const data = mnistCaptions(T1, DIMS);
  const byKey = new Map<string, number>();
  for (let i = 0; i < train.count; i++) byKey.set(imageKey(digitImage(train, i, T1.image), 0, 1024), i);
  assert.ok(byKey.size > 8400, "image keys tell the digits apart");
  const steps = 300;
  const seen = new Set<number>();
  const order: number[] = [];
  let [captionFirst, dropped, rows, unknown] = [0, 0, 0, 0];
  for (let step = 0; step < steps; step++) {
    const x = data.batch(step, 7);
    for (let b = 0; b < 32; b++) {
      const g = step * 32 + b;
      const index = byKey.get(imageKey(x.images!, b * 1024, 1024));
      if (index === undefined) {
        unknown++;
        continue;
      }
      order.push(index);
      if (g < train.count) {
        assert.ok(!seen.has(index), `digit ${index} twice in epoch 0`);
        seen.add(index);
      }
      const { caption, imageFirst } = readRow(x, b);
      rows++;
      if (!imageFirst) captionFirst++;
      if (caption === undefined) {
        assert.ok(!imageFirst, "only caption-first rows drop their caption");
        dropped++;
        continue;
      }
      const label = train.labels[index]!;
      assert.ok(
        CAPTION_TEMPLATES.some((t) => digitCaption(label, t) === caption),
        `"${caption}" for ${label}`,
      );
    }
  }
  assert.equal(unknown, 0, "rows hold train digits");
  assert.equal(seen.size, train.count, "epoch 0 covers every digit once");
  assert.notDeepEqual(order.slice(train.count, train.count + 100), order.slice(0, 100), "epoch 1 reshuffles");
  assert.ok(Math.abs(captionFirst / rows - 0.8) < 0.02, `caption-first ${captionFirst / rows}`);
  assert.ok(Math.abs(dropped / captionFirst - 0.1) < 0.02, `dropout ${dropped / captionFirst}`);
  assert.deepEqual(data.cursor(0), { epoch: 0, index: 0 });
  assert.deepEqual(data.cursor(265), { epoch: 0, index: 265 * 32 });
  assert.deepEqual(data.cursor(266), { epoch: 1, index: 266 * 32 - train.count });
  assert.equal(data.truncatedRows, 0);
});

Deno.test("eval batches: the test split in order, no dropout, the same every time", () => {
  const data = mnistCaptions(T1, DIMS);
  const digits = testDigits();
  assert.equal(digits, test);
  assert.equal(data.evalBatches, Math.floor(1505 / 32));
  let imageFirst = 0;
  for (const index of [0, 46]) {
    const x = data.evalBatch(index);
    assert.deepEqual(data.evalBatch(index).tokens, x.tokens);
    for (let b = 0; b < 32; b++) {
      const i = index * 32 + b;
      assert.deepEqual(x.images.slice(b * 1024, (b + 1) * 1024), digitImage(test, i, T1.image));
      const row = readRow(x, b);
      assert.ok(row.caption !== undefined, "no dropout in eval");
      assert.ok(CAPTION_TEMPLATES.some((t) => digitCaption(test.labels[i]!, t) === row.caption));
      if (row.imageFirst) imageFirst++;
    }
  }
  assert.ok(imageFirst > 0 && imageFirst < 32, "eval mixes both orders");
  assert.throws(() => data.evalBatch(47), /eval batch 47 is not in 0..46/);
});

Deno.test("options and bad configs", () => {
  const t1 = mnistCaptions({ ...T1, diffusion: { condDropout: 0 } }, DIMS, {
    captionFirst: 1,
    templates: [T1_CAPTION_TEMPLATE],
  });
  const x = t1.batch(0, 0);
  for (let b = 0; b < 32; b++) {
    const row = readRow(x, b);
    assert.ok(!row.imageFirst && row.caption?.startsWith("a handwritten digit "), `row ${b}: ${row.caption}`);
  }
  assert.throws(() => mnistCaptions(T1, { seq: 91 }), /dims.batch must be a positive integer/);
  assert.throws(() => mnistCaptions(T1, DIMS, { captionFirst: 1.5 }), /captionFirst must be in \[0, 1\]/);
  assert.throws(() => mnistCaptions(T1, DIMS, { evalBatches: 48 }), /48 eval batches of 32 exceed 1505/);
  assert.throws(() => mnistCaptions(T1, { batch: 2, seq: 80 }).batch(0, 0), /= 91 > seq/);
});

Deno.test("shiftImageFirst: captioning rows see moved digits, generation rows and eval stay centered", () => {
  const plain = mnistCaptions(T1, DIMS);
  const moved = mnistCaptions(T1, DIMS, { shiftImageFirst: 2 });
  assert.match(moved.describe(), /image-first digits shifted up to 2px/);
  assert.doesNotMatch(plain.describe(), /shifted/);
  const byKey = new Map<string, number>();
  for (let i = 0; i < train.count; i++) byKey.set(imageKey(digitImage(train, i, T1.image), 0, 1024), i);
  let shiftedRows = 0, imageFirstRows = 0;
  for (const step of [0, 7]) {
    // The same digits in the same rows (the epoch permutation does not depend on the shift).
    const [x, y] = [plain.batch(step, 3), moved.batch(step, 3)];
    for (let b = 0; b < 32; b++) {
      const k = byKey.get(imageKey(x.images, b * 1024, 1024))!;
      const got = y.images.slice(b * 1024, (b + 1) * 1024);
      if (!readRow(y, b).imageFirst) {
        assert.deepEqual(
          got,
          digitImage(train, k, T1.image),
          `step ${step} row ${b}: caption-first is centered`,
        );
        continue;
      }
      imageFirstRows++;
      const offsets = [-2, -1, 0, 1, 2].flatMap((dx) => [-2, -1, 0, 1, 2].map((dy) => [dx, dy] as const));
      const match = offsets.find(([dx, dy]) => {
        const want = digitImage(train, k, T1.image, [dx, dy]);
        return want.every((v, i) => v === got[i]);
      });
      assert.ok(match, `step ${step} row ${b}: an image-first digit moved by at most 2px`);
      if (match[0] !== 0 || match[1] !== 0) shiftedRows++;
    }
  }
  assert.ok(
    imageFirstRows > 5 && shiftedRows >= imageFirstRows / 2,
    `${shiftedRows} of ${imageFirstRows} moved`,
  );
  assert.deepEqual(moved.evalBatch(3).images, plain.evalBatch(3).images, "held-out digits are never moved");
  assert.throws(
    () => mnistCaptions(T1, DIMS, { shiftImageFirst: 1.5 }),
    /shiftImageFirst must be an integer 0..8/,
  );
  assert.throws(() => mnistCaptions(T1, DIMS, { shiftImageFirst: 9 }), /got 9/);
});

Deno.test("shiftedDigit moves the 28x28 digit and fills with background", () => {
  const src = (y: number, x: number) => train.images[4 * 784 + y * 28 + x]!;
  const out = shiftedDigit(train, 4, 2, -1);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const [sx, sy] = [x - 2, y + 1];
      assert.equal(out[y * 28 + x], sx >= 0 && sy < 28 ? src(sy, sx) : 0, `(${y}, ${x})`);
    }
  }
  assert.deepEqual(shiftedDigit(train, 4, 0, 0), train.images.slice(4 * 784, 5 * 784));
});
