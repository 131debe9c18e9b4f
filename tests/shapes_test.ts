import assert from "node:assert/strict";
import {
  describeScene,
  isHeldOut,
  longestCaption,
  quadrantOf,
  relationOf,
  sceneCaption,
} from "../data/shapes_scene.ts";
import {
  isShapesSource,
  SHAPES_CAPTION_BYTES,
  shapesCaptions,
  type ShapesConfig,
  shapesDataset,
} from "../data/shapes.ts";
import { sidePixels } from "../data/shapes_scene.ts";
import { shapeMask } from "../data/shapes_render.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";
import { decodePng } from "../runtime/png.ts";
import { rgbGridPng } from "../data/shapes_png.ts";

const [BOS, EOS, BOI] = [256, 257, 258];
const CONFIG: ShapesConfig = {
  text: { captionLength: SHAPES_CAPTION_BYTES, vocab: 261 },
  image: { size: 32, channels: 3, patch: 8, imagesPerRow: 1 },
  seq: 1 + SHAPES_CAPTION_BYTES + 18,
  diffusion: { condDropout: 0.1 },
};
const DIMS = { batch: 16 };

Deno.test("scenes are pure functions of (seed, split, index) and differ between seeds", () => {
  const a = shapesDataset(32), b = shapesDataset(32), c = shapesDataset(32, { seed: 7 });
  for (let i = 0; i < 20; i++) assert.deepEqual(a.scene("train", i), b.scene("train", i));
  const same = Array.from({ length: 20 }, (_, i) => sceneCaption(describeScene(a.scene("train", i))))
    .filter((cap, i) => cap === sceneCaption(describeScene(c.scene("train", i)))).length;
  assert.ok(same < 3, `${same} of 20 captions equal under another seed`);
});

Deno.test("training scenes never hold a held-out pair; every held-out scene holds one", () => {
  const d = shapesDataset(32);
  const held = (split: "train" | "held-out", i: number) =>
    d.scene(split, i).shapes.some((s) => isHeldOut(d.settings, s.colour, s.kind));
  for (let i = 0; i < 2000; i++) assert.equal(held("train", i), false, `train scene ${i}`);
  for (let i = 0; i < 500; i++) assert.equal(held("held-out", i), true, `held-out scene ${i}`);
  // Every colour and every kind still appears in training.
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) for (const s of d.scene("train", i).shapes) seen.add(s.colour).add(s.kind);
  assert.equal(seen.size, d.settings.colours.length + d.settings.kinds.length);
});

Deno.test("shapes stay inside the image, apart from each other, and where their caption says", () => {
  for (const S of [32, 48]) {
    const d = shapesDataset(S);
    for (let i = 0; i < 500; i++) {
      const scene = d.scene("train", i);
      const masks = scene.shapes.map((s) => shapeMask(s.kind, s.cx, s.cy, sidePixels(s.size, S), S));
      for (const s of scene.shapes) {
        const r = sidePixels(s.size, S) / 2;
        assert.ok(
          s.cx - r >= 1 && s.cx + r <= S - 1 && s.cy - r >= 1 && s.cy + r <= S - 1,
          `${S}: scene ${i}`,
        );
      }
      if (masks.length === 2) {
        // No pixel of one shape touches (4-neighbour) a pixel of the other.
        for (let p = 0; p < S * S; p++) {
          if (!masks[0]![p]) continue;
          for (const q of [p, p - 1, p + 1, p - S, p + S]) {
            assert.ok(!masks[1]![q], `${S}: scene ${i} touches`);
          }
        }
        const [a, b] = scene.shapes;
        assert.equal(relationOf([a!.cx, a!.cy], [b!.cx, b!.cy]), scene.where);
      } else assert.equal(quadrantOf(scene.shapes[0]!.cx, scene.shapes[0]!.cy, S), scene.where);
    }
  }
});

Deno.test("rows: captions in the slot, RGB images in [-1, 1], the same batch for the same (seed, step)", () => {
  const source = shapesCaptions(CONFIG, DIMS);
  assert.ok(isShapesSource(source));
  assert.ok(!isShapesSource(undefined));
  const x = source.batch(3, 5);
  assert.deepEqual(x, shapesCaptions(CONFIG, DIMS).batch(3, 5));
  assert.notDeepEqual(x.tokens, source.batch(4, 5).tokens);
  assert.equal(x.images.length, 16 * 3 * 32 * 32);
  assert.ok(x.images.every((v) => v === -1 || v === 1));
  let captionFirst = 0;
  for (let b = 0; b < 16; b++) {
    const row = Array.from(x.tokens.subarray(b * CONFIG.seq, (b + 1) * CONFIG.seq));
    assert.equal(row[0], BOS);
    if (x.image_first[b] === 1 || row[1] === BOI) continue;
    captionFirst++;
    const slot = row.slice(1, 1 + SHAPES_CAPTION_BYTES);
    const end = slot.indexOf(EOS);
    const text = new TextDecoder().decode(Uint8Array.from(end < 0 ? slot : slot.slice(0, end)));
    assert.match(
      text,
      /^a (small|large) \w+ \w+ (at the (top|bottom) (left|right)|(left of|right of|above|below) a .+)$/,
    );
  }
  assert.ok(captionFirst > 0);
  assert.equal(source.truncatedRows, 0);
  assert.equal(source.evalBatches, Math.floor(2048 / 16));
  assert.deepEqual(source.evalBatch(1), shapesCaptions(CONFIG, DIMS).evalBatch(1));
  assert.match(source.describe(), /red cross, green triangle, blue circle, yellow square held out/);
});

Deno.test("every training scene is visited once per epoch", () => {
  const source = shapesCaptions(CONFIG, { batch: 10 }, { trainScenes: 50, captionFirst: 1 });
  const seen = new Set<string>();
  for (let step = 0; step < 5; step++) {
    const x = source.batch(step, 1);
    for (let b = 0; b < 10; b++) seen.add(Array.from(x.images.subarray(b * 3072, (b + 1) * 3072)).join());
  }
  assert.equal(seen.size, 50);
  assert.deepEqual(source.cursor(7), { epoch: 1, index: 20 });
});

Deno.test("bad settings are refused by name", () => {
  assert.throws(
    () => shapesCaptions({ ...CONFIG, image: { ...CONFIG.image, channels: 1 } }, DIMS),
    /channels must be 3, got 1/,
  );
  assert.throws(
    () => shapesCaptions({ ...CONFIG, text: { ...CONFIG.text, captionLength: 40 } }, DIMS),
    /captionLength 40 is shorter than the longest caption \(58 bytes\)/,
  );
  assert.throws(() => shapesDataset(16), /image size must be an integer >= 32, got 16/);
  assert.throws(() => shapesDataset(32, { heldOut: [["red", "star" as never]] }), /held-out pair "red star"/);
  assert.throws(() => shapesCaptions(CONFIG, { batch: 0 }), /dims.batch must be a positive integer, got 0/);
  assert.throws(() => shapesCaptions(CONFIG, DIMS).evalBatch(128), /eval batch 128 is not in 0..127/);
  assert.equal(
    longestCaption({ colours: ["red"], kinds: ["cross"] }),
    "a small red cross right of a small red cross".length,
  );
  assert.ok(
    !isShapesSource(
      mnistCaptions({
        ...CONFIG,
        image: { ...CONFIG.image, channels: 1 },
        text: { captionLength: 24, vocab: 261 },
        seq: 43,
      }, DIMS),
    ),
  );
});

Deno.test("RGB grids are PNGs of the images' colours", () => {
  const d = shapesDataset(32);
  const images = [0, 1, 2].map((i) => d.image(d.scene("train", i)));
  const png = decodePng(rgbGridPng(images, 32, 2), "grid");
  assert.deepEqual([png.width, png.height], [2 * 32 + 3 * 2, 2 * 32 + 3 * 2]);
  const s = d.scene("train", 0).shapes[0]!;
  const [x, y] = [2 + Math.floor(s.cx), 2 + Math.floor(s.cy)];
  const at = (y * png.width + x) * 4;
  const want = {
    red: [255, 0, 0],
    green: [0, 255, 0],
    blue: [0, 0, 255],
    yellow: [255, 255, 0],
    cyan: [0, 255, 255],
    magenta: [255, 0, 255],
  }[s.colour];
  assert.deepEqual(Array.from(png.rgba.subarray(at, at + 3)), want);
  assert.deepEqual(Array.from(png.rgba.subarray(0, 3)), [128, 128, 128]);
});
