/**
 * The evaluation of a Transfusion run on the shapes dataset, by the exact pixel checker:
 *   generation   one image per caption of K held-out scenes (combinations never trained on) and of K
 *                training scenes (seen combinations); each attribute read from the pixels and compared
 *                with the caption (shapes_checker.ts), per attribute and all-correct
 *   captioning   greedy captions of real held-out and training images, parsed back into attributes
 *                (shapes_parse.ts) and scored the same way
 *   held-out     the forward entry's loss and metrics over the source's eval batches
 *   autoencoder  with a VAE run: mean squared error and PSNR of held-out images encoded and decoded
 * The model is reached through `ShapesModel`, so the scoring runs (and is tested) without a GPU.
 */
import { type AttributeScore, readImage, SCORED_ATTRIBUTES, scoreReading } from "./shapes_checker.ts";
import { readCaption } from "./shapes_parse.ts";
import { describeScene, type Scene, sceneCaption } from "./shapes_scene.ts";
import type { ShapesDataset, ShapesSource, ShapesSplit } from "./shapes.ts";
import { type ImageAutoencoder, type ReconstructionError, reconstructionError } from "./shapes_vae.ts";
import {
  captionImages,
  generateImages,
  heldOutLosses,
  type ModelRun,
  type SamplerMethod,
} from "../runtime/generate/mod.ts";
import { percent, wilsonInterval } from "./digit_eval.ts";

/** What the evaluation asks of a model. */
export interface ShapesModel {
  /** One [3, S, S] image per caption. */
  generate(captions: readonly string[]): Promise<Float32Array[]>;
  caption(images: readonly Float32Array[]): Promise<string[]>;
  /** Mean loss and metrics over the held-out batches (absent: not reported). */
  heldOutLosses?(): Promise<{ batches: number; values: Record<string, number> }>;
}

export interface ShapesEvalOptions {
  /** Scenes per split whose captions are drawn (default 32). */
  readonly generate: number;
  /** Scenes per split whose images are captioned (default 32). */
  readonly captions: number;
  /** Held-out images reconstructed by the autoencoder, when one is given (default 64). */
  readonly reconstruct?: number;
  readonly autoencoder?: ImageAutoencoder;
  readonly log?: (line: string) => void;
}

export type AttributeName = (typeof SCORED_ATTRIBUTES)[number];

/** Fractions of images right per attribute, over `count` images. */
export interface SplitScore {
  readonly count: number;
  readonly accuracy: Readonly<Record<AttributeName, number>>;
  /** The 95% Wilson interval of the all-correct fraction. */
  readonly all95: readonly [number, number];
}

export interface ShapesEval {
  readonly generation: { readonly heldOut: SplitScore; readonly train: SplitScore; readonly seconds: number };
  readonly captioning: {
    readonly heldOut: SplitScore;
    readonly train: SplitScore;
    readonly seconds: number;
    readonly examples: readonly { readonly truth: string; readonly caption: string }[];
  };
  readonly heldOutLosses: { readonly batches: number; readonly values: Readonly<Record<string, number>> };
  readonly autoencoder?: ReconstructionError;
}

export interface ShapesEvalOutput {
  readonly result: ShapesEval;
  /** Generated images, held-out captions first, with their captions. */
  readonly samples: readonly { readonly caption: string; readonly image: Float32Array }[];
  /** The autoencoder's inputs and outputs, when one ran. */
  readonly reconstructions?: { readonly inputs: Float32Array[]; readonly outputs: Float32Array[] };
}

export async function evaluateShapes(
  model: ShapesModel,
  dataset: ShapesDataset,
  opts: ShapesEvalOptions,
): Promise<ShapesEvalOutput> {
  const log = opts.log ?? (() => {});
  const S = dataset.settings.size;
  const checker = { size: S, colours: dataset.settings.colours, kinds: dataset.settings.kinds };
  const scenes = (split: ShapesSplit, n: number) => sceneList(dataset, split, n);

  const drawn = [...scenes("held-out", opts.generate), ...scenes("train", opts.generate)];
  const prompts = drawn.map((s) => sceneCaption(describeScene(s)));
  log(
    `generating ${prompts.length} images (${opts.generate} held-out and ${opts.generate} training captions)`,
  );
  let started = performance.now();
  const images = await model.generate(prompts);
  const genSeconds = (performance.now() - started) / 1000;
  const genScores = drawn.map((s, i) => scoreReading(describeScene(s), readImage(images[i]!, checker), S));

  const shown = [...scenes("held-out", opts.captions), ...scenes("train", opts.captions)];
  log(`captioning ${shown.length} images (${opts.captions} held-out and ${opts.captions} training scenes)`);
  started = performance.now();
  const captions = await model.caption(shown.map((s) => dataset.image(s)));
  const capSeconds = (performance.now() - started) / 1000;
  const capScores = shown.map((s, i) => scoreReading(describeScene(s), readCaption(captions[i]!), S));

  let heldOut: ShapesEval["heldOutLosses"] = { batches: 0, values: {} };
  if (model.heldOutLosses) {
    log("held-out losses");
    heldOut = await model.heldOutLosses();
  }
  let autoencoder: ReconstructionError | undefined;
  let reconstructions: ShapesEvalOutput["reconstructions"];
  if (opts.autoencoder) {
    const inputs = scenes("held-out", opts.reconstruct ?? 64).map((s) => dataset.image(s));
    log(`reconstructing ${inputs.length} held-out images with the autoencoder`);
    const outputs = await opts.autoencoder.reconstruct(inputs);
    autoencoder = reconstructionError(inputs, outputs);
    reconstructions = { inputs, outputs };
  }
  const g = opts.generate, c = opts.captions;
  const result: ShapesEval = {
    generation: {
      heldOut: summarize(genScores.slice(0, g)),
      train: summarize(genScores.slice(g)),
      seconds: genSeconds,
    },
    captioning: {
      heldOut: summarize(capScores.slice(0, c)),
      train: summarize(capScores.slice(c)),
      seconds: capSeconds,
      examples: shown.map((s, i) => ({ truth: sceneCaption(describeScene(s)), caption: captions[i]! })),
    },
    heldOutLosses: heldOut,
    ...(autoencoder ? { autoencoder } : {}),
  };
  return {
    result,
    samples: prompts.map((caption, i) => ({ caption, image: images[i]! })),
    ...(reconstructions ? { reconstructions } : {}),
  };
}

/** The first n scenes of a split (all of it when it has fewer). */
function sceneList(dataset: ShapesDataset, split: ShapesSplit, n: number): Scene[] {
  const size = split === "train" ? dataset.trainScenes : dataset.heldOutScenes;
  return Array.from({ length: Math.min(n, size) }, (_, i) => dataset.scene(split, i));
}

export function summarize(scores: readonly AttributeScore[]): SplitScore {
  const n = scores.length;
  const accuracy = Object.fromEntries(
    SCORED_ATTRIBUTES.map((a) => [a, n ? scores.filter((s) => s[a]).length / n : 0]),
  ) as Record<AttributeName, number>;
  return { count: n, accuracy, all95: wilsonInterval(scores.filter((s) => s.all).length, n) };
}

export interface RunSampling {
  readonly steps: number;
  readonly cfg: number;
  readonly seed: number;
  readonly method?: SamplerMethod;
  /** Held-out loss batches at most (default all). */
  readonly lossBatches?: number;
}

/** A loaded run (or a training session) as the evaluation's model: sampler, greedy captions, forward. */
export function runModel(run: ModelRun, source: ShapesSource, s: RunSampling): ShapesModel {
  return {
    generate: (captions) =>
      generateImages(run, captions, {
        steps: Math.min(s.steps, run.config.diffusion.T),
        cfg: s.cfg,
        seed: s.seed,
        ...(s.method ? { method: s.method } : {}),
      }),
    caption: (images) => captionImages(run, images),
    heldOutLosses: () => heldOutLosses(run, source, run.dims.batch ?? 1, s.lossBatches),
  };
}

/** One line of attribute accuracies: "colour 90.6% kind 81.2% ... all 40.6% [95% CI ...]". */
export function formatSplit(s: SplitScore): string {
  const parts = SCORED_ATTRIBUTES.map((a) => `${a} ${percent(s.accuracy[a])}`);
  const [lo, hi] = s.all95;
  return `${parts.join("  ")}  [all: 95% CI ${percent(lo)}-${percent(hi)}, ${s.count} images]`;
}

/** The figures as a few lines for a person. */
export function formatShapesEval(r: ShapesEval): string {
  const losses = Object.entries(r.heldOutLosses.values).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
  const ae = r.autoencoder;
  return [
    `generation (pixel checker, ${r.generation.seconds.toFixed(1)} s)`,
    `  held-out combinations  ${formatSplit(r.generation.heldOut)}`,
    `  seen combinations      ${formatSplit(r.generation.train)}`,
    `captioning (parsed captions, ${r.captioning.seconds.toFixed(1)} s)`,
    `  held-out scenes        ${formatSplit(r.captioning.heldOut)}`,
    `  training scenes        ${formatSplit(r.captioning.train)}`,
    ...r.captioning.examples.slice(0, 3).map((e) => `    "${e.truth}" -> "${e.caption}"`),
    `held-out losses          ${losses || "none"}` +
    (r.heldOutLosses.batches ? `  (${r.heldOutLosses.batches} batches)` : ""),
    ae
      ? `autoencoder              MSE ${ae.mse.toFixed(5)}  PSNR ${
        ae.psnr.toFixed(2)
      } dB  (${ae.count} held-out images, [-1, 1] range)`
      : "autoencoder              not measured (no --vae run given)",
  ].join("\n");
}
