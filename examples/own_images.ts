/**
 * Transfusion on your own captioned pictures: text -> image and image -> text from one transformer.
 *
 *   deno task train examples/own_images.ts --data images:./my_pictures --steps 2000
 *   deno task train examples/own_images.ts --data jsonl:./pairs.jsonl
 *
 * A folder holds cat.png (or .jpg) with cat.txt beside it, the caption; a JSONL file holds one
 * {"image": "cat.png", "caption": "a cat"} per line. Pictures are cropped to their centered square,
 * area-resized to 32x32 RGB and scaled to [-1, 1] (data/own_images.ts). Without --data it trains on
 * the eight test pictures in tests/fixtures/own_data/images. Captions longer than captionLength bytes
 * are cut, and training says how many before its first step: raise `text.captionLength` (and seq
 * follows) with `--set text.captionLength=48` if yours are longer.
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { imageFolder } from "../data/own_images.ts";

export default transfusion({
  name: "own_images",
  backbone: { dim: 96, depth: 4, heads: 4, hidden: 256 },
  text: { vocab: 261, captionLength: 32 },
  // 32x32 RGB in 4x4 patches: 64 patches of 48 values. Row: BOS, caption, BOI, 64 patches, EOI.
  image: { size: 32, channels: 3, patch: 4, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  batch: 16,
  training: { steps: 1000, batch: 16, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: imageFolder(new URL("../tests/fixtures/own_data/images/", import.meta.url)),
});
