/**
 * The demo's Transfusion with its loss weighted three ways, without touching the forward pass:
 *
 * - per modality: the text loss counts 2x (loss.textWeight), the diffusion loss 5x (loss.lambda);
 * - per image: captioning (image-first) rows' images weigh 0.25 in the diffusion loss, from the
 *   data (loss.imageWeights "input": the loss entry takes image_weight [B, N], and
 *   `withImageWeights` fills it from each batch);
 * - per timestep, in a `totalLoss` hook: an image drawn at step t counts 1.5 - t / T (1.5 for the
 *   least noisy, 0.5 for the noisiest), on top of its weight. The hook sees the parts the builder
 *   computed (lm, each image's loss [B, N], the weights, the timesteps, the logits) and returns the
 *   total, with a metric that training logs beside "lm" and "diffusion".
 *
 *   L = 2 * L_LM + 5 * sum_i(w_i * (1.5 - t_i / T) * mse_i) / (number of images)
 */
import { mnistCaptions } from "../data/mnist_captions.ts";
import { type LossParts, transfusion, withImageWeights } from "../spec/transfusion/mod.ts";

function timestepWeighted({ lm, images, weight, valid, t, config }: LossParts) {
  const byTime = t.div(config.diffusion.T).neg().add(1.5); // [B, N]
  const diffusion = images.mul(weight).mul(byTime).sum().div(valid.sum().maximum(1));
  const loss = lm.mul(config.loss.textWeight ?? 1).add(diffusion.mul(config.loss.lambda));
  return { loss, metrics: { timed: diffusion } };
}

export default transfusion({
  name: "transfusion_custom_loss",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 22 },
  image: { size: 16, channels: 1, patch: 4 },
  loss: { textWeight: 2, lambda: 5, imageWeights: "input" },
  pieces: { totalLoss: timestepWeighted },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) =>
    withImageWeights(
      mnistCaptions(c, dims),
      c,
      (b) => Array.from(b.image_first!, (f) => (f > 0.5 ? 0.25 : 1)),
    ),
});
