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
