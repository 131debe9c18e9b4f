import assert from "node:assert/strict";
import {
  type SceneImages,
  SHAPES_CAPTION_BYTES,
  shapesCaptions,
  type ShapesConfig,
  shapesDataset,
} from "../data/shapes.ts";
import { chwToHwc, hwcToChw, isShapesImageSource, shapesImages } from "../data/shapes_images.ts";
import { latentImages, type LatentTable } from "../data/shapes_latents.ts";
import vaeShapes from "../examples/vae_shapes.ts";
import { resolveConfig } from "../spec/config.ts";

Deno.test("shapes images: NHWC batches of the rendered scenes, pure in (seed, step), held-out in order", () => {
  const source = shapesImages(32, 4);
  assert.ok(isShapesImageSource(source));
  const { x } = source.batch(2, 9);
  assert.equal(x.length, 4 * 32 * 32 * 3);
  assert.deepEqual(x, shapesImages(32, 4).batch(2, 9).x);
  assert.notDeepEqual(x, source.batch(3, 9).x);
  const held = source.evalBatch(1).x;
  const d = shapesDataset(32);
  const planes = d.image(d.scene("held-out", 5)); // eval batch 1 of 4 holds scenes 4..7
  assert.deepEqual(held.subarray(32 * 32 * 3, 2 * 32 * 32 * 3), chwToHwc(planes, 32));
  assert.deepEqual(hwcToChw(chwToHwc(planes, 32), 32), planes);
  // pixel (row 0, column 1) of image 0: its three channels sit next to each other
  const img = chwToHwc(planes, 32);
  assert.deepEqual([img[3], img[4], img[5]], [planes[1], planes[1024 + 1], planes[2048 + 1]]);
  assert.throws(() => source.evalBatch(source.evalBatches), /eval batch \d+ is not in 0\.\.\d+/);
});

Deno.test("examples/vae_shapes.ts trains on the shapes images; MNIST settings with shapes data are refused", () => {
  const c = resolveConfig(vaeShapes.config, {}, "vae_shapes") as Record<string, unknown>;
  const source = vaeShapes.data!(c as never, { batch: 2 });
  assert.ok(isShapesImageSource(source));
  assert.throws(
    () => vaeShapes.data!({ ...c, channels: 1 } as never, { batch: 2 }),
    /data "shapes" is RGB, so channels must be 3, got 1/,
  );
});

/** A table of 6 train and 2 held-out "latents" whose every value names its scene. */
function fakeTable(): LatentTable {
  const per = 4 * 8 * 8;
  const values = new Float32Array(8 * per).map((_, k) => Math.floor(k / per));
  return {
    vaeRun: "nowhere",
    step: 1,
    channels: 4,
    side: 8,
    trainScenes: 6,
    heldOutScenes: 2,
    mean: [0, 0, 0, 0],
    std: [1, 1, 1, 1],
    values,
  };
}

const LATENT_CONFIG: ShapesConfig = {
  text: { captionLength: SHAPES_CAPTION_BYTES, vocab: 261 },
  image: { size: 8, channels: 4, patch: 2, imagesPerRow: 1 },
  seq: 1 + SHAPES_CAPTION_BYTES + 18,
  diffusion: { condDropout: 0 },
};

Deno.test("rows take the model's images from the latent table; the scenes stay 32x32 for the checker", () => {
  const images: SceneImages = latentImages(fakeTable());
  const opts = { sceneSize: 32, trainScenes: 6, heldOutScenes: 2, images };
  const source = shapesCaptions(LATENT_CONFIG, { batch: 2 }, opts);
  assert.equal(source.dataset.settings.size, 32);
  assert.equal(source.dataset.pixels(source.dataset.scene("train", 0)).length, 3 * 32 * 32);
  const b = source.evalBatch(0);
  assert.equal(b.images.length, 2 * 4 * 8 * 8);
  // held-out scenes 0 and 1 are table rows 6 and 7
  assert.deepEqual([b.images[0], b.images[4 * 8 * 8]], [6, 7]);
  const t = source.batch(0, 1).images;
  assert.ok(Array.from(t).every((v) => v >= 0 && v < 6), "training rows come from the train part");
  assert.throws(() => images.of("held-out", 2), /held-out scene 2 is not in the cache \(0\.\.1\)/);
  assert.throws(
    () =>
      shapesCaptions(
        { ...LATENT_CONFIG, image: { ...LATENT_CONFIG.image, channels: 3 } },
        { batch: 2 },
        opts,
      ),
    /are 4 x 8 x 8; set image\.channels = 4 and image\.size = 8 \(got 3 and 8\)/,
  );
});
