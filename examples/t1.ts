/**
 * T1, the reference training benchmark (../shared/benchmarks/T1.md), exactly:
 *
 * | text      | bytes + BOS 256, EOS 257, BOI 258, EOI 259: vocab 260; caption "a handwritten digit {d}",
 * |           | padded with EOS / truncated to 24 tokens                                               |
 * | image     | MNIST 28x28 in [-1, 1], padded to 32x32 with -1; 4x4 patches: 64 patches of 16 values  |
 * | layout    | BOS, caption (24), BOI, 64 patches, EOI = 91 positions; batch 32                        |
 * | backbone  | dim 128, 4 layers, 4 heads, pre-RMSNorm (eps 1e-5), RoPE base 10000, SwiGLU 512, std 0.02 |
 * | patches   | linear in (16 -> 128) and out (128 -> 16); sinusoidal t (128) -> MLP -> added            |
 * | mask      | causal, bidirectional among the image's patches                                        |
 * | diffusion | DDPM T = 1000, cosine (s = 0.008, beta max 0.999), epsilon prediction, t uniform per image |
 * | loss      | CE on the caption tokens and EOI (BOI is not a target) + 5 x MSE(eps)                   |
 * | optimizer | AdamW lr 3e-4 (constant), betas (0.9, 0.95), eps 1e-8, weight decay 0.01, no clipping   |
 *
 * Every row is caption-first with the one caption template and no condition dropout, so no row is
 * image-first and the noise limit never applies. `deno task explain examples/t1.ts --json` gives
 * its FLOPs per training step.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions, T1_CAPTION_TEMPLATE } from "../data/mnist_captions.ts";

export default transfusion({
  name: "t1",
  backbone: {
    dim: 128,
    depth: 4,
    heads: 4,
    mlp: "swiglu",
    hidden: 512,
    norm: "rmsnorm",
    normEps: 1e-5,
    initStd: 0.02,
    ropeBase: 10000,
  },
  text: { vocab: 260, captionLength: 24 },
  image: {
    size: 32,
    channels: 1,
    patch: 4,
    imagesPerRow: 1,
    encoder: "linear",
    positions: "rope2d",
    timestep: "add",
    timestepDim: 128,
  },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0 },
  loss: { lambda: 5, averaging: "per-image", boiTarget: false },
  seq: 91,
  batch: 32,
  training: {
    batch: 32,
    lr: 3e-4,
    warmup: 0,
    lrFloor: 3e-4,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.01,
    clip: 0,
  },
  data: (c, dims) => mnistCaptions(c, dims, { captionFirst: 1, templates: [T1_CAPTION_TEMPLATE] }),
});
