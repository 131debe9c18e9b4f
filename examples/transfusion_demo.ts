/**
 * The model `deno task demo` trains on MNIST in about ten minutes on a 2-core CPU (lavapipe WebGPU):
 * captioned digits, 80% caption-first (text -> image) and 20% image-first (image -> text), 10% of
 * the captions dropped for classifier-free guidance. Every caption is "a handwritten digit {d}", the
 * phrasing the demo prompts with, so the little model spends its steps on one mapping.
 *
 * Sized for the machine: digits are averaged down to 7x7 and padded to 8x8 (-1 on the right and
 * bottom), cut into 2x2 patches: 16 patches of 4 values. A row is BOS, a 22-token caption slot (the
 * 21 caption bytes and EOS), BOI, 16 patches, EOI = 41 positions. 8x8 digits in 2x2 patches are what
 * a dim-128 toy Transfusion learned to draw to 98-100% class accuracy (../shared/design); this one is
 * half as wide and three layers deep: 1.62 GFLOP per training step at batch 32 (T1: 21.7), see
 * `deno task explain examples/transfusion_demo.ts`.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions, T1_CAPTION_TEMPLATE } from "../data/mnist_captions.ts";

export default transfusion({
  name: "transfusion_demo",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 }, // SwiGLU, RMSNorm, RoPE, std 0.02
  text: { vocab: 261, captionLength: 22 },
  image: { size: 8, channels: 1, patch: 2, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5 },
  batch: 32,
  // A small model takes a larger step than T1's 3e-4; warmup and a cosine decay keep it stable.
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => mnistCaptions(c, dims, { templates: [T1_CAPTION_TEMPLATE] }),
});
