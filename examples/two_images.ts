/**
 * Two images per row with text between: BOS, "a 3", BOI 16 patches EOI, "and a 7", BOI 16 patches
 * EOI (49 positions), declared as a row template instead of laid out by hand. The layout, the LM
 * targets (every text slot, BOI after them, EOI after each image) and the diffusion loss of both
 * images follow from the template; the second image is drawn after seeing the first and the text
 * between. 10% of rows drop both texts (classifier-free guidance).
 *
 * ```sh
 * deno task train examples/two_images.ts --steps 20 --out runs/two
 * deno task generate runs/two --row 'text:"a 3" image text:"and a 7" image' --steps 10 --out two
 * # two/image1.png, two/image2.png; or let the model write the text between:
 * deno task generate runs/two --row 'text:"a 3" image text image' --out two_written
 * ```
 */
import { image, row, text, transfusion, type TransfusionConfig } from "../spec/transfusion/mod.ts";
import { assembleTemplateBatch, type TemplateExample } from "../spec/transfusion/sequence.ts";
import type { DataSource } from "../spec/data.ts";
import { type DigitSet, loadMnist } from "../data/mnist.ts";
import { digitImage } from "../data/mnist_captions.ts";
import { mix, uniform } from "../data/seeded_random.ts";

export const TWO_IMAGES_ROW = row(text("caption", 4), image(), text("between", 8), image());

/** Rows of two random digits a, b: caption "a {a}", between "and a {b}"; both dropped at condDropout. */
export function twoDigitRows(c: TransfusionConfig, dims: Readonly<Record<string, number>>): DataSource {
  const batch = dims.batch!;
  const cfg = { ...c, seq: dims.seq ?? c.seq };
  const { train, test } = loadMnist();
  const rows = (set: DigitSet, random: () => number, dropout: number) => {
    const examples = Array.from({ length: batch }, (): TemplateExample => {
      const [i, j] = [Math.floor(random() * set.count), Math.floor(random() * set.count)];
      const dropped = random() < dropout;
      return {
        texts: dropped
          ? { caption: null, between: null }
          : { caption: `a ${set.labels[i]}`, between: `and a ${set.labels[j]}` },
        images: [digitImage(set, i, cfg.image), digitImage(set, j, cfg.image)],
      };
    });
    return assembleTemplateBatch(examples, cfg).inputs;
  };
  return {
    imageView: "digits",
    tokensPerBatch: batch * cfg.seq,
    evalBatches: 4,
    batch: (step, seed) => rows(train, uniform(mix(seed, step, 1)), c.diffusion.condDropout),
    evalBatch: (index) => rows(test, uniform(mix(0, index, 2)), 0),
    describe: () => `two MNIST digits per row, ${train.count} train / ${test.count} test digits`,
  };
}

export default transfusion({
  name: "two_images",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 4 },
  image: { size: 8, channels: 1, patch: 2 },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", condDropout: 0.1 },
  row: TWO_IMAGES_ROW,
  batch: 16,
  training: { steps: 600, batch: 16, lr: 1e-3, warmup: 30, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: twoDigitRows,
});
