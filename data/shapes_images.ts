/**
 * The shapes scenes as plain images, without captions: the training data of an autoencoder (the VAE
 * of examples/vae.ts) on the scenes Transfusion trains on. Batches are `x` [batch, S, S, 3] (NHWC,
 * the layout of spec/nn's convolutions) in [-1, 1], the scale of the Transfusion rows, so a VAE's
 * reconstruction error reads on the same scale as the shapes eval's. Example j of step t is train
 * scene floor(u * n) for u drawn from (run seed, t, j); eval batch i is held-out scenes i*batch.. in
 * order (the scenes `deno task eval` reconstructs come first).
 */
import type { DataSource } from "../spec/data.ts";
import { mix, uniform } from "./seeded_random.ts";
import { type ShapesDataset, shapesDataset, type ShapesOptions } from "./shapes.ts";

export interface ShapesImageSource extends DataSource {
  readonly kind: typeof SHAPES_IMAGES_KIND;
  readonly dataset: ShapesDataset;
  readonly evalBatches: number;
  batch(step: number, seed: number): { x: Float32Array };
  evalBatch(index: number): { x: Float32Array };
}

const SHAPES_IMAGES_KIND = "shapes-images";

/** Whether a spec's data source is this one (how `deno task eval` picks the reconstruction eval). */
export function isShapesImageSource(source: DataSource | undefined): source is ShapesImageSource {
  return source !== undefined && (source as { kind?: unknown }).kind === SHAPES_IMAGES_KIND;
}

/** [3, S, S] planes -> [S, S, 3] pixels. */
export function chwToHwc(image: Float32Array, S: number): Float32Array {
  const out = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < S * S; p++) out[p * 3 + c] = image[c * S * S + p]!;
  }
  return out;
}

/** [S, S, 3] pixels -> [3, S, S] planes. */
export function hwcToChw(image: Float32Array, S: number): Float32Array {
  const out = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < S * S; p++) out[c * S * S + p] = image[p * 3 + c]!;
  }
  return out;
}

export function shapesImages(size: number, batch: number, opts: ShapesOptions = {}): ShapesImageSource {
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`shapesImages: dims.batch must be a positive integer, got ${batch}`);
  }
  const dataset = shapesDataset(size, opts);
  const evalBatches = opts.evalBatches ?? Math.floor(dataset.heldOutScenes / batch);
  if (!Number.isInteger(evalBatches) || evalBatches < 0 || evalBatches * batch > dataset.heldOutScenes) {
    throw new Error(
      `shapesImages: ${evalBatches} eval batches of ${batch} exceed ${dataset.heldOutScenes} held-out scenes`,
    );
  }
  const pack = (split: "train" | "held-out", indices: readonly number[]) => {
    const x = new Float32Array(indices.length * 3 * size * size);
    indices.forEach((k, i) =>
      x.set(chwToHwc(dataset.image(dataset.scene(split, k)), size), i * 3 * size * size)
    );
    return { x };
  };
  return {
    kind: SHAPES_IMAGES_KIND,
    dataset,
    evalBatches,
    tokensPerBatch: batch,
    batch(step, seed) {
      if (!Number.isInteger(step) || step < 0) {
        throw new Error(`shapesImages: step must be an integer >= 0, got ${step}`);
      }
      const random = uniform(mix(seed, step, 3));
      return pack("train", Array.from({ length: batch }, () => Math.floor(random() * dataset.trainScenes)));
    },
    evalBatch(index) {
      if (!Number.isInteger(index) || index < 0 || index >= evalBatches) {
        throw new Error(`shapesImages: eval batch ${index} is not in 0..${evalBatches - 1}`);
      }
      return pack("held-out", Array.from({ length: batch }, (_, j) => index * batch + j));
    },
    describe: () =>
      `Shapes scenes as images for an autoencoder: ${dataset.trainScenes} train / ${dataset.heldOutScenes} ` +
      `held-out, ${size}x${size} RGB in [-1, 1], NHWC`,
  };
}
