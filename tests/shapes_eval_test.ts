import assert from "node:assert/strict";
import { shapesDataset } from "../data/shapes.ts";
import { evaluateShapes, formatShapesEval, type ShapesModel } from "../data/shapes_eval.ts";
import { reconstructionError } from "../data/shapes_vae.ts";
import { renderScene } from "../data/shapes_render.ts";
import { describeScene, type Scene, sceneCaption, type ShapeColour } from "../data/shapes_scene.ts";

const data = shapesDataset(32);
const scenes = [0, 1].flatMap((k) =>
  Array.from({ length: 16 }, (_, i) => data.scene(k ? "train" : "held-out", i))
);

/** A stand-in model that draws each caption's scene and names each image's scene, recoloured by `paint`. */
function fakeModel(paint: (c: ShapeColour) => ShapeColour, opts: { captions?: boolean } = {}): ShapesModel {
  const recolour = (s: Scene): Scene => ({
    ...s,
    shapes: s.shapes.map((x) => ({ ...x, colour: paint(x.colour) })),
  });
  const byCaption = new Map(scenes.map((s) => [sceneCaption(describeScene(s)), s]));
  const byImage = new Map(scenes.map((s) => [data.image(s).join(), s]));
  return {
    generate: (captions) =>
      Promise.resolve(captions.map((c) => renderScene(recolour(byCaption.get(c)!), 32))),
    caption: (images) =>
      Promise.resolve(
        images.map((
          x,
        ) => (opts.captions === false ? "" : sceneCaption(describeScene(recolour(byImage.get(x.join())!))))),
      ),
  };
}

Deno.test("a model that draws and names every scene right scores 100% on every attribute", async () => {
  const { result, samples } = await evaluateShapes(fakeModel((c) => c), data, { generate: 16, captions: 16 });
  for (
    const split of [
      result.generation.heldOut,
      result.generation.train,
      result.captioning.heldOut,
      result.captioning.train,
    ]
  ) {
    assert.equal(split.count, 16);
    assert.deepEqual(Object.values(split.accuracy), [1, 1, 1, 1, 1, 1]);
  }
  assert.equal(samples.length, 32);
  assert.equal(samples[0]!.caption, sceneCaption(describeScene(data.scene("held-out", 0))));
  assert.match(formatShapesEval(result), /held-out combinations {2}count 100.0% {2}colour 100.0%/);
  assert.match(formatShapesEval(result), /autoencoder +not measured/);
});

Deno.test("wrong colours cost the colour attribute and all-correct, nothing else; empty captions score 0", async () => {
  const swap = (c: ShapeColour): ShapeColour => (c === "red" ? "cyan" : "red");
  const { result } = await evaluateShapes(fakeModel(swap, { captions: false }), data, {
    generate: 16,
    captions: 16,
  });
  const g = result.generation.heldOut.accuracy;
  assert.deepEqual([g.count, g.kind, g.size, g.where, g.colour, g.all], [1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Object.values(result.captioning.train.accuracy), [0, 0, 0, 0, 0, 0]);
});

Deno.test("the autoencoder's error is measured on held-out images", async () => {
  const shifted = (x: Float32Array) => x.map((v) => v + 0.1);
  const ae = { reconstruct: (xs: readonly Float32Array[]) => Promise.resolve(xs.map(shifted)), destroy() {} };
  const { result, reconstructions } = await evaluateShapes(fakeModel((c) => c), data, {
    generate: 1,
    captions: 0,
    reconstruct: 5,
    autoencoder: ae,
  });
  assert.equal(result.autoencoder!.count, 5);
  assert.ok(Math.abs(result.autoencoder!.mse - 0.01) < 1e-6);
  assert.ok(Math.abs(result.autoencoder!.psnr - 10 * Math.log10(400)) < 1e-3);
  assert.deepEqual(reconstructions!.inputs[0], data.image(data.scene("held-out", 0)));
  assert.equal(reconstructionError([new Float32Array(3)], [new Float32Array(3)]).psnr, Infinity);
  assert.throws(() => reconstructionError([new Float32Array(3)], []), /1 inputs but 0 reconstructions/);
});

Deno.test("the VAE hook opens a run with encode and decode entries and reconstructs through both", async () => {
  const { train } = await import("../runtime/train/mod.ts");
  const { loadCheckpoint } = await import("../runtime/checkpoint.ts");
  const { openAutoencoder } = await import("../data/shapes_vae.ts");
  const spec = (await import("./fixtures/shapes_autoencoder.ts")).default;
  const out = await Deno.makeTempDir({ prefix: "shapes_vae_" });
  try {
    const specPath = new URL("./fixtures/shapes_autoencoder.ts", import.meta.url).pathname;
    await train({ model: spec, specPath, out, settings: { steps: 2, lr: 0.01, logEvery: 1 } });
    const saved = (await loadCheckpoint(out)).model.tensors;
    const gain = Array.from(saved.get("gain")!.data as Float32Array);
    const bias = (saved.get("bias")!.data as Float32Array)[0]!;
    assert.notDeepEqual(gain, [0.5, 1, -1], "training moved the parameters");
    const ae = await openAutoencoder(out);
    try {
      // 6 images: a whole batch of 4 and a padded one of 2.
      const inputs = Array.from({ length: 6 }, (_, i) => data.image(data.scene("held-out", i)));
      const outputs = await ae.reconstruct(inputs);
      assert.equal(outputs.length, 6);
      outputs.forEach((y, i) => {
        for (let k = 0; k < y.length; k += 97) {
          const want = inputs[i]![k]! * gain[Math.floor(k / 1024)]! + bias;
          assert.ok(Math.abs(y[k]! - want) < 1e-5, `image ${i} value ${k}: ${y[k]} vs ${want}`);
        }
      });
    } finally {
      ae.destroy();
    }
    await assert.rejects(openAutoencoder("/nonexistent-run"), /does not exist/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
