/**
 * The Transfusion spec of the shipped demo checkpoint (examples/checkpoints/transfusion_demo, this spec
 * at dim 192 and depth 6 through --set, trained on a GPU; its README has the commands, the figures and
 * why each choice here was made). At its own size (dim 64, depth 3) it is also the reference model of
 * tests and benchmarks. `deno task demo` trains examples/transfusion_demo_cpu.ts instead, which learns
 * in minutes on a CPU.
 *
 * MNIST digits captioned "a handwritten digit {d}": half the rows caption-first (text -> image, 10% of
 * captions dropped for classifier-free guidance), half image-first (image -> text, the digit moved by
 * up to 2 pixels so captioning does not learn its training digits by heart). Digits are averaged to
 * 14x14 and centered in 16x16, cut into 4x4 patches; a row is BOS, a 22-token caption slot, BOI, 16
 * patches, EOI = 41 positions (`deno task explain examples/transfusion_demo.ts` for FLOPs per step).
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions, T1_CAPTION_TEMPLATE } from "../data/mnist_captions.ts";

export default transfusion({
  name: "transfusion_demo",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 }, // SwiGLU, RMSNorm, RoPE, std 0.02
  text: { vocab: 261, captionLength: 22 },
  image: { size: 16, channels: 1, patch: 4, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5 },
  batch: 32,
  // A small model takes a larger step than T1's 3e-4; warmup and a cosine decay keep it stable.
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) =>
    mnistCaptions(c, dims, { templates: [T1_CAPTION_TEMPLATE], captionFirst: 0.5, shiftImageFirst: 2 }),
});
