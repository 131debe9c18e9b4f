/**
 * The demo's Transfusion with an image codec of our own: a two-layer MLP per patch each way, with
 * one skip across the transformer (like the U-Net's, at the patch level). Patch rows carry K = C*p*p
 * = 16 pixel values; vectors are the transformer's D = 64:
 *
 *   encoder  patches [B, N*P, K] -> s = gelu(in1(patches)) [B, N*P, W] -> vectors in2(s) [B, N*P, D]
 *   decoder  h [B, N*P, D] -> out2(gelu(out1(h)) + s) [B, N*P, K]
 *
 * The timestep embedding is still added to the vectors by the builder (image.timestep "add"); the
 * codec also gets it (temb [B, N*P, D]) and may use it. Parameters: encoder.in1, encoder.in2,
 * decoder.out1, decoder.out2 in the plan and the checkpoint.
 */
import { gelu, linear, module, type Tensor } from "../spec/mod.ts";
import {
  type Codec,
  type Decode,
  type Encode,
  patchValues,
  transfusion,
  type TransfusionConfig,
} from "../spec/transfusion/mod.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";

type T3 = Tensor<"f32", 3>;
const WIDTH = 128;

function mlpCodec(c: TransfusionConfig): Codec {
  const [K, D, std] = [patchValues(c), c.backbone.dim, c.backbone.initStd];
  const encoder = module(
    { in1: linear(K, WIDTH, { std }), in2: linear(WIDTH, D, { std }) },
    (p): Encode => (patches) => {
      const s = gelu(p.in1(patches));
      return { vectors: p.in2(s), skips: [s] };
    },
  );
  const decoder = module(
    { out1: linear(D, WIDTH, { std }), out2: linear(WIDTH, K, { std }) },
    (p): Decode => (h, [s]) => p.out2(gelu(p.out1(h)).add(s!) as T3),
  );
  return { encoder, decoder };
}

export default transfusion({
  name: "transfusion_custom_codec",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 22 },
  image: { size: 16, channels: 1, patch: 4 },
  pieces: { codec: mlpCodec },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => mnistCaptions(c, dims),
});
