/**
 * Per-image loss weights from the data: `withImageWeights(source, c, weigh)` adds the `image_weight`
 * input (f32 [B, N], one weight per image slot) that the loss entry takes with
 * `loss.imageWeights: "input"`, computed from each batch, and checks every value.
 *
 * @example
 * ```ts
 * // Captioning rows' images count half in the diffusion loss.
 * data: (c, dims) =>
 *   withImageWeights(mnistCaptions(c, dims), c, (b) => Array.from(b.image_first!, (f) => 1 - f / 2)),
 * ```
 */
import type { Batch, DataSource } from "../data.ts";
import type { TransfusionConfig } from "./config.ts";

/** A batch's weight per image slot [B * N], row-major: slot n of row b at b * N + n. */
export type WeighImages = (batch: Batch) => ArrayLike<number>;

export function withImageWeights(source: DataSource, c: TransfusionConfig, weigh: WeighImages): DataSource {
  if (c.loss.imageWeights !== "input") {
    throw new Error(
      `withImageWeights: the spec's loss.imageWeights is ${
        JSON.stringify(c.loss.imageWeights ?? "none")
      }; set loss: { imageWeights: "input" } so the loss entry takes image_weight`,
    );
  }
  const N = c.image.imagesPerRow;
  const add = (batch: Batch, where: string): Batch => ({
    ...batch,
    image_weight: checkedWeights(weigh(batch), batch, N, where),
  });
  const device = source.device;
  return {
    tokensPerBatch: source.tokensPerBatch,
    ...(source.imageView ? { imageView: source.imageView } : {}),
    ...(source.evalBatches === undefined ? {} : { evalBatches: source.evalBatches }),
    describe: () => `${source.describe()}, per-image loss weights`,
    batch: (step, seed) => add(source.batch(step, seed), `step ${step}`),
    ...(source.evalBatch ? { evalBatch: (i: number) => add(source.evalBatch!(i), `eval batch ${i}`) } : {}),
    ...(device
      ? {
        device: {
          ...device,
          indexedBatch: (step: number, seed: number) => {
            const { batch, rows } = device.indexedBatch(step, seed);
            return { batch: add(batch, `step ${step}`), rows };
          },
        },
      }
      : {}),
  };
}

/** The weights as f32, or an error naming the first bad one: its slot, its value, the batch. */
function checkedWeights(w: ArrayLike<number>, batch: Batch, N: number, where: string): Float32Array {
  const need = batch.image_valid?.length;
  if (need === undefined) throw new Error(`withImageWeights: the batch at ${where} has no image_valid`);
  if (w.length !== need) {
    throw new Error(
      `withImageWeights: the weights at ${where} have ${w.length} values, expected ${need} (one per image slot, [B, ${N}])`,
    );
  }
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v) || v < 0) {
      throw new Error(
        `withImageWeights: image_weight[${i}] (row ${Math.floor(i / N)}, image slot ${
          i % N
        }) = ${v} at ${where}: ` +
          "must be a finite number >= 0",
      );
    }
  }
  return Float32Array.from(w);
}
