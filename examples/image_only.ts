/**
 * Class-conditional image generation with the same builder: the "caption" is one token, the digit
 * ("7"), so a row is BOS, class, BOI, 16 patches, EOI = 20 positions. Every row is caption-first;
 * 10% drop the class (classifier-free guidance). The LM loss only learns the class prior and EOI,
 * so nearly all of the training signal is the diffusion loss.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";

export default transfusion({
  name: "image_only",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 1 },
  image: { size: 8, channels: 1, patch: 2, imagesPerRow: 1 },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", condDropout: 0.1 },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  // "{n}" is one byte; its EOS does not fit the 1-token slot and is dropped (not counted as truncation).
  data: (c, dims) => mnistCaptions(c, dims, { captionFirst: 1, templates: ["{n}"] }),
});
