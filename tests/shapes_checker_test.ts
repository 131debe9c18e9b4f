import assert from "node:assert/strict";
import { shapesDataset } from "../data/shapes.ts";
import { readImage, scoreReading } from "../data/shapes_checker.ts";
import { readCaption } from "../data/shapes_parse.ts";
import { mix, uniform } from "../data/seeded_random.ts";
import { renderScene } from "../data/shapes_render.ts";
import { describeScene, type Scene, sceneCaption, SHAPE_KINDS } from "../data/shapes_scene.ts";

const S = 32;
const data = shapesDataset(S);
const checker = { size: S, colours: data.settings.colours, kinds: data.settings.kinds };
const scenes = (split: "train" | "held-out", n: number) =>
  Array.from({ length: n }, (_, i) => data.scene(split, i));

/** Fraction of scenes whose perturbed image the checker reads entirely right, and the first miss. */
function accuracy(list: readonly Scene[], perturb: (x: Float32Array, i: number) => Float32Array) {
  let right = 0;
  let miss: string | undefined;
  list.forEach((scene, i) => {
    const score = scoreReading(describeScene(scene), readImage(perturb(data.image(scene), i), checker), S);
    if (score.all) right++;
    else miss ??= `${sceneCaption(describeScene(scene))}: ${JSON.stringify(score)}`;
  });
  return { accuracy: right / list.length, miss };
}

/** Gaussian noise of std sigma (Box-Muller over the shared generator), seeded per image. */
function noisy(sigma: number) {
  return (x: Float32Array, i: number) => {
    const random = uniform(mix(99, i));
    return x.map((v) =>
      v + sigma * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
    );
  };
}

/** Each channel's 3x3 box mean mixed in by `w`: the soft edges of a sampled image. */
function blurred(w: number) {
  return (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < S; y++) {
        for (let xx = 0; xx < S; xx++) {
          let sum = 0, n = 0;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const [u, v] = [xx + dx, y + dy];
              if (u >= 0 && u < S && v >= 0 && v < S) [sum, n] = [sum + x[c * S * S + v * S + u]!, n + 1];
            }
          }
          const i = c * S * S + y * S + xx;
          out[i] = (1 - w) * x[i]! + w * (sum / n);
        }
      }
    }
    return out;
  };
}

Deno.test("the checker reads every attribute of rendered scenes exactly", () => {
  for (const split of ["train", "held-out"] as const) {
    const { accuracy: a, miss } = accuracy(scenes(split, 400), (x) => x);
    assert.equal(a, 1, `${split}: ${miss}`);
  }
});

Deno.test("the checker reads scenes through diffusion-like noise, blur and faded colours", () => {
  const list = scenes("train", 300);
  const cases = {
    "noise 0.3": noisy(0.3),
    "blur 0.5 + noise 0.2": (x: Float32Array, i: number) => noisy(0.2)(blurred(0.5)(x), i),
    "colours at 60% + noise 0.15": (x: Float32Array, i: number) => noisy(0.15)(x.map((v) => 0.6 * v), i),
  };
  for (const [name, perturb] of Object.entries(cases)) {
    const { accuracy: a, miss } = accuracy(list, perturb);
    console.log(`${name}: ${(100 * a).toFixed(1)}%`);
    assert.ok(a >= 0.98, `${name}: ${(100 * a).toFixed(1)}% read right; first miss ${miss}`);
  }
});

Deno.test("the checker says what is wrong: colour, kind, size, where, count", () => {
  const scene = data.scene("train", 0);
  const truth = describeScene(scene);
  const one = truth.shapes[0]!;
  const image = (s: Scene) => readImage(renderScene(s, S), checker);
  const changed = (patch: object) => ({
    ...scene,
    shapes: [{ ...scene.shapes[0]!, ...patch }, ...scene.shapes.slice(1)],
  });
  const otherColour = one.colour === "red" ? "green" : "red";
  const otherKind = SHAPE_KINDS.find((k) => k !== one.kind)!;
  assert.deepEqual(
    scoreReading(truth, image(changed({ colour: otherColour })), S),
    { count: true, colour: false, kind: true, size: true, where: true, all: false },
  );
  assert.equal(scoreReading(truth, image(changed({ kind: otherKind })), S).kind, false);
  const blank = readImage(new Float32Array(3 * S * S).fill(-1), checker);
  assert.deepEqual(blank.shapes, []);
  assert.deepEqual(
    scoreReading(truth, blank, S),
    { count: false, colour: false, kind: false, size: false, where: false, all: false },
  );
  // A single shape moved to the opposite quadrant.
  const single = scenes("train", 50).find((s) => s.shapes.length === 1)!;
  const moved = {
    ...single,
    shapes: [{ ...single.shapes[0]!, cx: S - single.shapes[0]!.cx, cy: S - single.shapes[0]!.cy }],
  };
  const score = scoreReading(describeScene(single), readImage(renderScene(moved, S), checker), S);
  assert.deepEqual([score.where, score.colour, score.kind], [false, true, true]);
  assert.throws(() => readImage(new Float32Array(10), checker), /10 values, a \[3, 32, 32\] image has 3072/);
});

Deno.test("a pair read in the other order scores the same; a swapped relation does not", () => {
  const pair = scenes("train", 50).find((s) =>
    s.shapes.length === 2 && s.shapes[0]!.colour !== s.shapes[1]!.colour
  )!;
  const truth = describeScene(pair);
  const [a, b] = truth.shapes;
  const inverse = { "left of": "right of", "right of": "left of", above: "below", below: "above" } as const;
  const flipped = sceneCaption({ shapes: [b!, a!], where: inverse[truth.where as keyof typeof inverse] });
  assert.equal(scoreReading(truth, readCaption(flipped), S).all, true, flipped);
  const wrong = sceneCaption({ shapes: [a!, b!], where: inverse[truth.where as keyof typeof inverse] });
  assert.deepEqual(
    scoreReading(truth, readCaption(wrong), S),
    { count: true, colour: true, kind: true, size: true, where: false, all: false },
  );
});

Deno.test("captions parse back to their scenes, and partial captions to partial scores", () => {
  for (const scene of [...scenes("train", 200), ...scenes("held-out", 200)]) {
    const truth = describeScene(scene);
    assert.equal(scoreReading(truth, readCaption(sceneCaption(truth)), S).all, true, sceneCaption(truth));
  }
  const truth = describeScene(scenes("train", 50).find((s) => s.shapes.length === 1)!);
  const one = truth.shapes[0]!;
  const half = readCaption(`a ${one.colour} ${one.kind}`);
  assert.deepEqual(
    scoreReading(truth, half, S),
    { count: true, colour: true, kind: true, size: false, where: false, all: false },
  );
  assert.deepEqual(readCaption("a small red circle at the top left"), {
    shapes: [{ kind: "circle", colour: "red", size: "small" }],
    where: "top left",
  });
  assert.deepEqual(readCaption("a large cyan cross below a small blue square").where, "below");
  assert.deepEqual(readCaption("").shapes, []);
});
