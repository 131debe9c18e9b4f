/**
 * The demo's backbone with "U-Net" patch codecs: 14x14 digits padded to 16x16, cut into 4x4 patches
 * (16 patches of 16 values). The paper found linear patching degrades quickly with bigger patches
 * while U-Net patching barely does.
 *
 * What "unet" means here (there is no convolution op): per patch, a stem and two down levels of
 * residual MLP blocks with plain LayerNorm (widths 32, 64), each conditioned on t, then a projection
 * to the transformer's width; on the way out, two up levels mirror them, each adding the skip of its
 * down level across the transformer. Pixels mix inside a patch in the codecs and across patches only
 * in the transformer (spec/transfusion/encoder.ts).
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";

export default transfusion({
  name: "transfusion_unet",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 22 },
  image: { size: 16, channels: 1, patch: 4, imagesPerRow: 1, encoder: "unet", unetWidths: [32, 64] },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => mnistCaptions(c, dims),
});
