/**
 * The shapes dataset as Transfusion training rows (spec/transfusion/sequence.ts): RGB scenes of one
 * or two shapes (data/shapes_scene.ts) with their captions, built in and drawn from a seed, so nothing
 * is downloaded or stored. As with MNIST captions, a row is caption-first (text-to-image) with
 * probability `captionFirst`, otherwise image-first (captioning), and a caption-first row drops its
 * caption with probability `config.diffusion.condDropout` (classifier-free guidance).
 *
 * Scene i of a split is a pure function of (dataset seed, split, i). Batches are pure functions of
 * (run seed, step): example g = step * batch + j is scene perm_e(g mod n) of epoch e = floor(g / n),
 * perm_e an affine permutation (a * i + b mod n) keyed by (run seed, e): the scenes are independent
 * draws already, so a cheap bijection is shuffle enough and needs no table.
 */
import type { DataSource } from "../spec/data.ts";
import {
  assembleBatch,
  type Example,
  type LossInputs,
  type SequenceConfig,
} from "../spec/transfusion/sequence.ts";
import { mix, uniform } from "./seeded_random.ts";
import { renderScene } from "./shapes_render.ts";
import {
  checkSceneSettings,
  COLOUR_NAMES,
  DEFAULT_HELD_OUT,
  describeScene,
  drawScene,
  longestCaption,
  type Scene,
  sceneCaption,
  type SceneSettings,
  SHAPE_KINDS,
  type ShapeColour,
  type ShapeKind,
} from "./shapes_scene.ts";

export interface ShapesOptions {
  /** Seed of the scenes themselves (default 0); the run's seed only orders them. */
  readonly seed?: number;
  /** Colours and shapes drawn from (default: all). */
  readonly colours?: readonly ShapeColour[];
  readonly kinds?: readonly ShapeKind[];
  /** (colour, shape) pairs kept out of training (default DEFAULT_HELD_OUT; [] for none). */
  readonly heldOut?: readonly (readonly [ShapeColour, ShapeKind])[];
  /** Fraction of scenes with two shapes (default 0.5). */
  readonly twoShapes?: number;
  /** Training scenes per epoch (default 50000). */
  readonly trainScenes?: number;
  /** Held-out scenes (default 2048): held-out losses, captioning and the prompts of the eval. */
  readonly heldOutScenes?: number;
  /** Fraction of caption-first rows (default 0.8, the paper's). */
  readonly captionFirst?: number;
  /** Held-out batches (default: every whole batch of the held-out scenes). */
  readonly evalBatches?: number;
  /** Side in pixels the scenes are drawn (and checked) at, when the model's images are not pixels (latents). */
  readonly sceneSize?: number;
  /** The model's image of each scene in place of its pixels: e.g. VAE latents (data/shapes_latents.ts). */
  readonly images?: SceneImages;
}

/** A model image per scene, by split and index: [channels, side, side]. */
export interface SceneImages {
  readonly channels: number;
  readonly side: number;
  of(split: ShapesSplit, index: number): Float32Array;
  describe(): string;
  /** Model images back to [3, S, S] pixels (latents through the VAE's decoder), for the pixel checker. */
  openDecoder?(): Promise<
    { decode(images: readonly Float32Array[]): Promise<Float32Array[]>; destroy(): void }
  >;
}

/** Bytes of the longest caption over every colour and shape: the caption slot a spec needs. */
export const SHAPES_CAPTION_BYTES = longestCaption({ colours: COLOUR_NAMES, kinds: SHAPE_KINDS });

export type ShapesSplit = "train" | "held-out";

/** The scenes, without the row assembly: what the eval and the tests draw from. */
export interface ShapesDataset {
  readonly settings: SceneSettings;
  readonly seed: number;
  readonly trainScenes: number;
  readonly heldOutScenes: number;
  scene(split: ShapesSplit, index: number): Scene;
  /** The model's image of a scene drawn by `scene`: [3, size, size] pixels in [-1, 1], or `images.of`. */
  image(scene: Scene): Float32Array;
  /** The scene's pixels, [3, size, size] in [-1, 1], whatever the model's images are. */
  pixels(scene: Scene): Float32Array;
  /** The model's images where they are not the pixels. */
  readonly images?: SceneImages;
}

export function shapesDataset(size: number, opts: ShapesOptions = {}): ShapesDataset {
  const settings: SceneSettings = {
    size,
    colours: opts.colours ?? COLOUR_NAMES,
    kinds: opts.kinds ?? SHAPE_KINDS,
    heldOut: opts.heldOut ?? DEFAULT_HELD_OUT,
    twoShapes: opts.twoShapes ?? 0.5,
  };
  checkSceneSettings(settings, "shapes");
  const seed = opts.seed ?? 0;
  const trainScenes = opts.trainScenes ?? 50000;
  const heldOutScenes = opts.heldOutScenes ?? 2048;
  for (const [name, n] of [["trainScenes", trainScenes], ["heldOutScenes", heldOutScenes]] as const) {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 26) {
      throw new Error(`shapes: ${name} must be an integer in 1..2^26, got ${n}`);
    }
  }
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`shapes: seed must be an integer >= 0, got ${seed}`);
  }
  // Where each scene came from, for `images.of` (scenes are plain values, drawn afresh each call).
  const origin = new WeakMap<Scene, [ShapesSplit, number]>();
  const images = opts.images;
  if (settings.heldOut.length === 0 && opts.heldOutScenes !== undefined) {
    throw new Error("shapes: heldOutScenes given but no (colour, shape) pair is held out");
  }
  return {
    settings,
    seed,
    trainScenes,
    heldOutScenes,
    scene(split, index) {
      const n = split === "train" ? trainScenes : heldOutScenes;
      if (!Number.isInteger(index) || index < 0 || index >= n) {
        throw new Error(`shapes: ${split} scene ${index} is not in 0..${n - 1}`);
      }
      // With nothing held out, the "held-out" split is fresh scenes of the training distribution.
      const drawn = split === "held-out" && settings.heldOut.length > 0 ? "held-out" : "train";
      const scene = drawScene(uniform(mix(seed, split === "train" ? 0 : 1, index)), settings, drawn);
      if (images) origin.set(scene, [split, index]);
      return scene;
    },
    image(scene) {
      if (!images) return renderScene(scene, size);
      const from = origin.get(scene);
      if (!from) throw new Error("shapes: image() of a scene this dataset did not draw");
      return images.of(...from);
    },
    pixels: (scene) => renderScene(scene, size),
    ...(images ? { images } : {}),
  };
}

/** What the source reads from the model's config, besides the sequence geometry. */
export type ShapesConfig = SequenceConfig & { readonly diffusion: { readonly condDropout: number } };

export interface ShapesSource extends DataSource {
  readonly dataset: ShapesDataset;
  readonly evalBatches: number;
  batch(step: number, seed: number): LossInputs;
  evalBatch(index: number): LossInputs;
  cursor(step: number): { epoch: number; index: number };
  readonly truncatedRows: number;
}

/** Whether a spec's data source is this one (how `deno task eval` picks the shapes evaluation). */
export function isShapesSource(source: DataSource | undefined): source is ShapesSource {
  return source !== undefined && "dataset" in source && (source as { kind?: unknown }).kind === SHAPES_KIND;
}
const SHAPES_KIND = "shapes";

/** `dims.batch` rows of `dims.seq` positions (default config.seq) per batch. */
export function shapesCaptions(
  config: ShapesConfig,
  dims: Readonly<Record<string, number>>,
  opts: ShapesOptions = {},
): ShapesSource {
  const batch = dims.batch;
  if (batch === undefined || !Number.isInteger(batch) || batch < 1) {
    throw new Error(`shapesCaptions: dims.batch must be a positive integer, got ${batch}`);
  }
  const cfg: SequenceConfig = { ...config, seq: dims.seq ?? config.seq };
  const own = opts.images;
  if (!own && cfg.image.channels !== 3) {
    throw new Error(`shapesCaptions: images are RGB, so image.channels must be 3, got ${cfg.image.channels}`);
  }
  if (own && (cfg.image.channels !== own.channels || cfg.image.size !== own.side)) {
    throw new Error(
      `shapesCaptions: the images (${own.describe()}) are ${own.channels} x ${own.side} x ${own.side}; ` +
        `set image.channels = ${own.channels} and image.size = ${own.side} (got ${cfg.image.channels} and ` +
        `${cfg.image.size})`,
    );
  }
  const dataset = shapesDataset(opts.sceneSize ?? cfg.image.size, opts);
  const longest = longestCaption(dataset.settings);
  // The slot may drop only the closing EOS: a cut caption would lose an attribute and teach a wrong image.
  if (cfg.text.captionLength < longest) {
    throw new Error(
      `shapesCaptions: text.captionLength ${cfg.text.captionLength} is shorter than the longest caption ` +
        `(${longest} bytes); set it to at least ${longest}`,
    );
  }
  const captionFirst = opts.captionFirst ?? 0.8;
  const dropout = config.diffusion.condDropout;
  for (const [name, p] of [["captionFirst", captionFirst], ["diffusion.condDropout", dropout]] as const) {
    if (!(p >= 0 && p <= 1)) throw new Error(`shapesCaptions: ${name} must be in [0, 1], got ${p}`);
  }
  const evalBatches = opts.evalBatches ?? Math.floor(dataset.heldOutScenes / batch);
  if (!Number.isInteger(evalBatches) || evalBatches < 0 || evalBatches * batch > dataset.heldOutScenes) {
    throw new Error(
      `shapesCaptions: ${evalBatches} eval batches of ${batch} exceed ${dataset.heldOutScenes} held-out scenes`,
    );
  }
  let truncatedRows = 0;
  const n = dataset.trainScenes;

  const rows = (scenes: readonly Scene[], random: () => number, drop: number): LossInputs => {
    const examples = scenes.map((scene): Example => {
      const order = random() < captionFirst ? "caption-first" : "image-first";
      const dropped = order === "caption-first" && random() < drop;
      return {
        caption: dropped ? undefined : sceneCaption(describeScene(scene)),
        images: [dataset.image(scene)],
        order,
      };
    });
    const { inputs, truncated } = assembleBatch(examples, cfg);
    truncatedRows += truncated;
    return inputs;
  };
  const checkStep = (step: number) => {
    if (!Number.isInteger(step) || step < 0) {
      throw new Error(`shapesCaptions: step must be an integer >= 0, got ${step}`);
    }
  };

  return {
    kind: SHAPES_KIND,
    dataset,
    tokensPerBatch: batch * cfg.seq,
    evalBatches,
    get truncatedRows() {
      return truncatedRows;
    },
    batch(step, seed) {
      checkStep(step);
      const scenes = Array.from({ length: batch }, (_, j) => {
        const g = step * batch + j;
        return dataset.scene("train", epochPermutation(n, seed, Math.floor(g / n))(g % n));
      });
      return rows(scenes, uniform(mix(seed, step, 1)), dropout);
    },
    // Held-out scenes in order; row orders from a generator fixed per index, whatever the run's seed.
    evalBatch(index) {
      if (!Number.isInteger(index) || index < 0 || index >= evalBatches) {
        throw new Error(`shapesCaptions: eval batch ${index} is not in 0..${evalBatches - 1}`);
      }
      const scenes = Array.from({ length: batch }, (_, j) => dataset.scene("held-out", index * batch + j));
      return rows(scenes, uniform(mix(0, index, 2)), 0);
    },
    cursor(step) {
      checkStep(step);
      const g = step * batch;
      return { epoch: Math.floor(g / n), index: g % n };
    },
    describe: () => {
      const s = dataset.settings;
      const held = s.heldOut.map(([c, k]) => `${c} ${k}`).join(", ");
      return `Shapes: ${n} train / ${dataset.heldOutScenes} held-out scenes (${
        held || "nothing"
      } held out), ` +
        `${s.colours.length} colours x ${s.kinds.length} shapes, ${
          Math.round(s.twoShapes * 100)
        }% two shapes, ` +
        `${Math.round(captionFirst * 100)}% caption-first, ${
          Math.round(dropout * 100)
        }% condition dropout, ` +
        (own ? `model images: ${own.describe()}` : `${s.size}x${s.size} RGB`);
    },
  } as ShapesSource & { readonly kind: string };
}

/** i -> (a i + b) mod n with a coprime to n: a permutation of 0..n-1 per (seed, epoch). */
function epochPermutation(n: number, seed: number, epoch: number): (i: number) => number {
  const random = uniform(mix(seed, epoch, 0));
  let a = 1 + Math.floor(random() * Math.max(1, n - 1));
  while (gcd(a, n) !== 1) a++;
  const b = Math.floor(random() * n);
  // a * i stays below 2^53 for n < 2^26, so the product is exact.
  return (i) => (a * i + b) % n;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
