/**
 * A small causal transformer language model over bytes (vocab 256): token embedding, `layers`
 * pre-norm blocks (RMSNorm -> multi-head attention with RoPE, RMSNorm -> SwiGLU), a final RMSNorm
 * and a linear head, trained by next-token cross-entropy. `targets` are the tokens shifted by one.
 */
import {
  arange,
  attention,
  type AttentionOptions,
  causalMask,
  crossEntropy,
  embedding,
  input,
  linearNoBias,
  type Materialized,
  model,
  module,
  rmsnorm,
  rope1d,
  swiglu,
  type Tensor,
} from "../spec/mod.ts";

const config = {
  vocab: 256, // bytes
  dim: 64,
  heads: 4,
  layers: 2,
  hidden: 192, // SwiGLU width, about 8/3 * dim
  ropeBase: 10000,
};
type Config = typeof config;

/** One pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)). [B, T, D] -> [B, T, D]. */
function block(c: Config) {
  const outStd = 0.02 / Math.sqrt(2 * c.layers); // residual projections, GPT-2 style
  return module(
    {
      norm1: rmsnorm(c.dim),
      attn: attention(c.dim, c.heads, { outStd }),
      norm2: rmsnorm(c.dim),
      mlp: swiglu(c.dim, c.hidden, { outStd }),
    },
    (p) => (x: Tensor<"f32", 3>, attend: AttentionOptions): Tensor<"f32", 3> => {
      const h = x.add(p.attn(p.norm1(x), attend));
      return h.add(p.mlp(p.norm2(h)));
    },
  );
}

const params = (c: Config) => ({
  embed: embedding(c.vocab, c.dim),
  blocks: Array.from({ length: c.layers }, () => block(c)),
  norm: rmsnorm(c.dim),
  head: linearNoBias(c.dim, c.vocab),
});
type Params = Materialized<ReturnType<typeof params>>;

/** tokens: i32 [B, T] -> logits [B, T, vocab]; position t sees tokens 0..t only. */
function forward(p: Params, tokens: Tensor<"i32", 2>, c: Config): Tensor<"f32", 3> {
  const t = tokens.dim(1);
  const positions = arange(t, "i32"); // [T]
  const attend: AttentionOptions = {
    mask: causalMask(t), // [T, T]
    rope: (qk) => rope1d(qk, positions, c.ropeBase),
  };
  let x = p.embed(tokens); // [B, T, D]
  for (const b of p.blocks) x = b(x, attend);
  return p.head(p.norm(x));
}

export default model({
  name: "transformer",
  config,
  dims: { batch: 16, seq: 32 },
  params,
  inputs: () => ({
    tokens: input("i32", ["batch", "seq"]),
    targets: input("i32", ["batch", "seq"]), // tokens shifted left by one
  }),
  loss: (p, { tokens, targets }, c) => crossEntropy(forward(p, tokens, c), targets),
  entries: {
    logits: {
      inputs: () => ({ tokens: input("i32", ["batch", "seq"]) }),
      outputs: (p, { tokens }, c) => ({ logits: forward(p, tokens as Tensor<"i32", 2>, c) }),
    },
  },
});
