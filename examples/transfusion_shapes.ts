/**
 * Transfusion on the built-in shapes dataset (data/shapes.ts): 32x32 RGB scenes of one or two shapes
 * with captions that name every attribute ("a small red circle left of a large blue square"), four
 * (colour, shape) pairs held out of training to test composition. `deno task eval` on a run of it
 * reads the generated images with the exact pixel checker (data/shapes_checker.ts).
 *
 * Sized for a 2-core CPU (lavapipe WebGPU), like the MNIST demo: 8x8 patches through linear codecs,
 * 16 patches of 192 values (the paper's 16-patch setting, where it found U-Net codecs far ahead of
 * linear ones). A row is BOS, a 58-byte caption slot (the longest caption), BOI, 16 patches, EOI =
 * 77 positions. bench/shapes_compare.ts trains this spec beside the U-Net and latent variants.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { SHAPES_CAPTION_BYTES, shapesCaptions } from "../data/shapes.ts";

export default transfusion({
  name: "transfusion_shapes",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 }, // SwiGLU, RMSNorm, RoPE, std 0.02
  text: { vocab: 261, captionLength: SHAPES_CAPTION_BYTES },
  image: { size: 32, channels: 3, patch: 8, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5 },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => shapesCaptions(c, dims, { captionFirst: 0.7 }),
});
