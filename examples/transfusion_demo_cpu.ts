/**
 * The model `deno task demo` trains from scratch, sized to learn MNIST captioning and generation in
 * the few minutes a 2-core CPU (lavapipe WebGPU) has inside the demo; the shipped checkpoint beside it
 * is examples/transfusion_demo.ts, a larger model trained on a GPU.
 *
 * The same data as that spec (14x14 digits centered in 16x16, 4x4 patches; half caption-first rows
 * with 10% of captions dropped for guidance, half image-first with digits moved up to 2 pixels), with
 * what made a short run learn (the measurements are in examples/checkpoints/transfusion_demo/README.md):
 * - the caption is the digit alone ("7", prompt the same), so a row is BOS, digit, EOS, BOI, 16
 *   patches, EOI = 21 positions, half the 41 of "a handwritten digit 7";
 * - the denoiser predicts the clean image (x0): with eps prediction, 600 steps drew one blob for every
 *   digit, as predicting noise barely needs the caption;
 * - image-first rows are noised at most to t = 100 (of 1000) and the diffusion loss weighs 2: the one
 *   informative caption token learns from nearly clean digits;
 * - lr 3e-3 after 30 warmup steps.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";

export default transfusion({
  name: "transfusion_demo_cpu",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 }, // SwiGLU, RMSNorm, RoPE, std 0.02
  text: { vocab: 261, captionLength: 2 }, // the digit and EOS
  image: { size: 16, channels: 1, patch: 4, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "x0", noiseLimit: 100, condDropout: 0.1 },
  loss: { lambda: 2 },
  batch: 32,
  // The demo sizes `steps` to its time budget; the lr decays over whatever it chose.
  training: { steps: 1000, batch: 32, lr: 3e-3, warmup: 30, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => mnistCaptions(c, dims, { templates: ["{n}"], captionFirst: 0.5, shiftImageFirst: 2 }),
});
