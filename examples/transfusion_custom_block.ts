/**
 * The demo's Transfusion with a block of our own: a gated parallel block (GPT-J / PaLM style). One
 * norm feeds attention and the MLP side by side, and a learned per-channel gate scales their sum
 * before the residual add:
 *
 *   x + gate * (attn(norm(x)) + mlp(norm(x)))        x [B, T, D], gate [D] (starts at 1)
 *
 * Everything else (embedding, codec, heads, losses, the mask and the KV-cache entries) is the
 * builder's own. The block's parameters appear as backbone.blocks.<i>.{norm,attn,mlp,gate} in the
 * plan and the checkpoint (`deno task explain examples/transfusion_custom_block.ts`).
 */
import { attention, module, ones, param, rmsnorm, swiglu, type Tensor } from "../spec/mod.ts";
import { type Block, type Piece, transfusion, type TransfusionConfig } from "../spec/transfusion/mod.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";

type T3 = Tensor<"f32", 3>;

function gatedParallelBlock(c: TransfusionConfig): Piece<Block> {
  const { dim, heads, hidden, normEps, initStd: std } = c.backbone;
  return module(
    {
      norm: rmsnorm(dim, normEps),
      attn: attention(dim, heads, { std }),
      mlp: swiglu(dim, hidden, { std }),
      gate: param([dim], ones()),
    },
    // `attend` carries the Transfusion mask and rotary positions: hand it to attention unchanged.
    (p) => (x, attend) => {
      const h = p.norm(x);
      return x.add(p.attn(h, attend).add(p.mlp(h)).mul(p.gate)) as T3;
    },
  );
}

export default transfusion({
  name: "transfusion_custom_block",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: 22 },
  image: { size: 16, channels: 1, patch: 4 },
  pieces: { block: gatedParallelBlock },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: (c, dims) => mnistCaptions(c, dims),
});
