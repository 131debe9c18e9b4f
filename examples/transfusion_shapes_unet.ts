/**
 * examples/transfusion_shapes.ts with the U-Net patch codec (spec/transfusion/unet.ts) in place of
 * the linear one: the same backbone, data, optimizer and 16-patch grid (32x32 RGB in 8x8 patches),
 * conv levels of widths 16 and 32 over the whole image (32 -> 16 -> 8, then 2x2 folded into channels
 * to reach the 4x4 grid). One of the three variants bench/shapes_compare.ts trains side by side.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { SHAPES_CAPTION_BYTES, shapesCaptions } from "../data/shapes.ts";

export default transfusion({
  name: "transfusion_shapes_unet",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: SHAPES_CAPTION_BYTES },
  image: {
    size: 32,
    channels: 3,
    patch: 8,
    imagesPerRow: 1,
    encoder: "unet",
    unetWidths: [16, 32],
    positions: "rope2d",
  },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5 },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => shapesCaptions(c, dims, { captionFirst: 0.7 }),
});
