/**
 * The demo's backbone with "U-Net" patch codecs: 14x14 digits padded to 16x16, cut into 4x4 patches
 * (16 patches of 16 values). The paper found linear patching degrades quickly with bigger patches
 * while U-Net patching barely does.
 *
 * The codec is the paper's U-Net (spec/transfusion/unet.ts): on the way in, a 3x3 conv stem and two
 * down levels over the whole 16x16 image (a residual conv block with plain LayerNorm and the timestep
 * embedding added inside, then a 2x2 average pool: 16 -> 8 -> 4, the patch grid), widths 32 and 64,
 * then a linear map to the transformer's width per grid cell; on the way out, two up levels mirror
 * them (nearest upsampling, the down level's skip added, a residual block) and a 3x3 conv gives the
 * pixels back. Pixels mix across patch borders in the codec as well as in the transformer. The
 * per-patch residual-MLP codec this example used before is `encoder: "mlp"`.
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
