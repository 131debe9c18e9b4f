/**
 * T1 (../shared/benchmarks/T1.md) written in jax-js: forward, gradient and AdamW step as one jit-compiled
 * function, for comparing training-step time with our compiler on the same adapter. A dev-time peer
 * only; nothing outside bench/peers and tests/peers_test.ts imports it.
 *
 * Same model and loss as examples/t1.ts, with these differences in how, not what, is computed:
 * - Embedding lookups are one-hot matmuls: jax-js 0.1.25 cannot jit the gradient of `take` (its
 *   scatter routine rejects traced inputs: "routine primitive scatter input is not imm").
 * - The sequence is concat(text[:26], patches, text[90:]) since every T1 row has the same layout; ours
 *   places patches with a one-hot [T, 64] matmul that handles any layout.
 * - LM targets, their weights, the mask and the RoPE angles come in as host tables (t1_inputs.ts);
 *   ours derives them in-graph from the layout buffers.
 * - t and the noise are drawn in-graph like ours, from jax-js's threefry, not our Philox.
 *
 * jax-js owns arrays by reference count: a function consumes its array arguments, `.ref` keeps one.
 */
import { type Device, jit, nn, numpy as np, random, tree, valueAndGrad } from "@jax-js/jax";
import { EOI_POSITION, FIRST_PATCH, PATCHES, T1, type T1Batch } from "./t1_inputs.ts";

type Linear = { w: np.Array; b: np.Array };
type Block = {
  norm1: np.Array;
  wq: np.Array;
  wk: np.Array;
  wv: np.Array;
  wo: np.Array;
  norm2: np.Array;
  w1: np.Array;
  w3: np.Array;
  w2: np.Array;
};
export type T1Params = {
  embed: np.Array; // [vocab, D]
  time: { fc1: Linear; fc2: Linear }; // 128 -> D -> D
  encoder: Linear; // 16 -> D
  blocks: Block[];
  norm: np.Array;
  head: np.Array; // [D, vocab]
  decoder: Linear; // D -> 16
};

/** The batch and the layout tables on the device: [B, S] tokens etc. (see T1Batch). */
export type T1DeviceBatch = {
  tokens: np.Array;
  images: np.Array;
  targets: np.Array;
  targetWeights: np.Array;
  mask: np.Array; // bool [S, S]
  cos: np.Array; // [S, 1, dh]
  sin: np.Array;
  alphaBar: np.Array; // [T]
};

/** Parameters as T1 initializes them: normal(0.02) matrices, ones for norm gains, zero biases. */
export function initT1Params(seed: number): T1Params {
  const { dim: D, hidden: H, vocab: V, patchValues: K, timestepDim, initStd } = T1;
  let counter = 0;
  const normal = (shape: number[]) => random.normal(random.key(seed * 1000 + counter++), shape).mul(initStd);
  const linear = (i: number, o: number): Linear => ({ w: normal([i, o]), b: np.zeros([o]) });
  const block = (): Block => ({
    norm1: np.ones([D]),
    wq: normal([D, D]),
    wk: normal([D, D]),
    wv: normal([D, D]),
    wo: normal([D, D]),
    norm2: np.ones([D]),
    w1: normal([D, H]),
    w3: normal([D, H]),
    w2: normal([H, D]),
  });
  return {
    embed: normal([V, D]),
    time: { fc1: linear(timestepDim, D), fc2: linear(D, D) },
    encoder: linear(K, D),
    blocks: Array.from({ length: T1.depth }, block),
    norm: np.ones([D]),
    head: normal([D, V]),
    decoder: linear(D, K),
  };
}

const dense = (x: np.Array, p: Linear) => np.matmul(x, p.w).add(p.b);

function rmsnorm(x: np.Array, gain: np.Array): np.Array {
  const inv = np.reciprocal(np.sqrt(np.square(x.ref).mean(-1, { keepdims: true }).add(T1.normEps)));
  return x.mul(inv).mul(gain);
}

/** x [B, S, heads, dh] rotated per half of dh: x cos + rotateHalf(x) sin, each half on its own. */
function rope2d(x: np.Array, cos: np.Array, sin: np.Array): np.Array {
  const q = x.shape[3]! / 4;
  const part = (i: number) => x.ref.slice([], [], [], [i * q, (i + 1) * q]);
  const rotated = np.concatenate([part(1).neg(), part(0), part(3).neg(), part(2)], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

function block(h: np.Array, p: Block, x: T1DeviceBatch): np.Array {
  const { batch: B, seq: S, heads, dim: D } = T1;
  const split = (y: np.Array) => y.reshape([B, S, heads, D / heads]);
  const a = rmsnorm(h.ref, p.norm1); // [B, S, D]
  const q = rope2d(split(np.matmul(a.ref, p.wq)), x.cos.ref, x.sin.ref);
  const k = rope2d(split(np.matmul(a.ref, p.wk)), x.cos.ref, x.sin.ref);
  const v = split(np.matmul(a, p.wv));
  const o = nn.dotProductAttention(q, k, v, { mask: x.mask.ref }).reshape([B, S, D]);
  const h1 = h.add(np.matmul(o, p.wo));
  const m = rmsnorm(h1.ref, p.norm2);
  const gated = nn.silu(np.matmul(m.ref, p.w1)).mul(np.matmul(m, p.w3)); // [B, S, hidden]
  return h1.add(np.matmul(gated, p.w2));
}

/** t [B] (integer-valued f32) -> [B, D]: MLP(sinusoidal(t)), cos half then sin half. */
function timestepEmbedding(t: np.Array, p: T1Params["time"]): np.Array {
  const half = T1.timestepDim / 2;
  const freqs = np.exp(np.arange(half).astype(np.float32).mul(-Math.log(10000) / half));
  const args = t.reshape([-1, 1]).mul(freqs.reshape([1, half])); // [B, half]
  const emb = np.concatenate([np.cos(args.ref), np.sin(args)], -1);
  return dense(nn.silu(dense(emb, p.fc1)), p.fc2);
}

/** The T1 loss: LM cross-entropy + lambda * MSE(eps), with t and eps drawn from `key`. */
export function t1Loss(p: T1Params, x: T1DeviceBatch, key: np.Array): np.Array {
  const { batch: B, seq: S, vocab: V, grid, patchValues: K } = T1;
  const keys = random.split(key, 2);
  const u = random.uniform(keys.ref.slice(0), [B]);
  const eps = random.normal(keys.slice(1), [B, PATCHES, K]); // noise in patch order
  const step = np.minimum(np.floor(u.mul(T1.T)), T1.T - 1); // [B]
  const abar = np.take(x.alphaBar, step.ref.astype(np.int32), 0).reshape([B, 1, 1]);
  const x0 = x.images.reshape([B, grid, 4, grid, 4]).transpose([0, 1, 3, 2, 4]).reshape([B, PATCHES, K]);
  const xt = x0.mul(np.sqrt(abar.ref)).add(eps.ref.mul(np.sqrt(np.negative(abar).add(1))));

  const temb = timestepEmbedding(step, p.time).reshape([B, 1, T1.dim]);
  const patches = dense(xt, p.encoder).add(temb); // [B, 64, D]
  const text = np.matmul(nn.oneHot(x.tokens, V), p.embed); // [B, S, D]
  let h = np.concatenate([
    text.ref.slice([], [0, FIRST_PATCH]),
    patches,
    text.slice([], [EOI_POSITION, S]),
  ], 1);
  for (const layer of p.blocks) h = block(h, layer, x);
  h = rmsnorm(h, p.norm);

  const pred = dense(h.ref.slice([], [FIRST_PATCH, EOI_POSITION]), p.decoder); // [B, 64, 16]
  const logp = nn.logSoftmax(np.matmul(h, p.head), -1); // [B, S, V]
  const nll = logp.mul(nn.oneHot(x.targets, V)).sum(-1).neg(); // [B, S]
  const lm = nll.mul(x.targetWeights.ref).sum().div(x.targetWeights.sum());
  const diffusion = np.square(pred.sub(eps)).mean();
  tree.dispose([x.mask, x.cos, x.sin]); // only borrowed (.ref) by the blocks
  return lm.add(diffusion.mul(T1.lambda));
}

export type AdamState = { m: T1Params; v: T1Params };

/**
 * One training step: loss, gradients and the AdamW update, jit-compiled. `corrections` holds
 * [1 / (1 - beta1^t), 1 / (1 - beta2^t)]. Matrices decay, vectors (gains, biases) do not.
 */
export const t1TrainStep = jit(
  (p: T1Params, s: AdamState, x: T1DeviceBatch, key: np.Array, corrections: np.Array) => {
    const { lr, beta1, beta2, eps, weightDecay } = T1.adamw;
    const [loss, grads] = valueAndGrad(t1Loss)(tree.ref(p), x, key);
    const [params, def] = tree.flatten(p);
    const [g, m, v] = [tree.leaves(grads), tree.leaves(s.m), tree.leaves(s.v)];
    const c1 = corrections.ref.slice(0);
    const c2 = corrections.slice(1);
    const out = params.map((w, i) => {
      const gi = g[i]!;
      const mi = m[i]!.mul(beta1).add(gi.ref.mul(1 - beta1));
      const vi = v[i]!.mul(beta2).add(np.square(gi).mul(1 - beta2));
      const update = mi.ref.mul(c1.ref).div(np.sqrt(vi.ref.mul(c2.ref)).add(eps));
      const decayed = w.ndim >= 2 ? w.mul(1 - lr * weightDecay) : w;
      return { w: decayed.sub(update.mul(lr)), m: mi, v: vi };
    });
    c1.dispose();
    c2.dispose();
    const rebuild = (pick: (o: { w: np.Array; m: np.Array; v: np.Array }) => np.Array) =>
      tree.unflatten(def, out.map(pick)) as T1Params;
    return [loss, rebuild((o) => o.w), { m: rebuild((o) => o.m), v: rebuild((o) => o.v) }] as [
      np.Array,
      T1Params,
      AdamState,
    ];
  },
);

/** The batch and tables as jax-js arrays on `device`. */
export function deviceBatch(
  b: T1Batch,
  tables: {
    mask: Uint8Array;
    cos: Float32Array<ArrayBuffer>;
    sin: Float32Array<ArrayBuffer>;
    alphaBar: Float32Array<ArrayBuffer>;
  },
  device: Device,
): T1DeviceBatch {
  const { batch: B, seq: S } = T1;
  const dh = T1.dim / T1.heads;
  const f32 = (data: Float32Array<ArrayBuffer>, shape: number[]) => np.array(data, { device }).reshape(shape);
  return {
    tokens: np.array(b.tokens, { dtype: np.int32, device }).reshape([B, S]),
    images: f32(b.images, [B, 1, 32, 32]),
    targets: np.array(b.targets, { dtype: np.int32, device }).reshape([B, S]),
    targetWeights: f32(b.targetWeights, [B, S]),
    mask: np.array(Int32Array.from(tables.mask), { dtype: np.int32, device }).reshape([S, S]).notEqual(0),
    cos: f32(tables.cos, [S, 1, dh]),
    sin: f32(tables.sin, [S, 1, dh]),
    alphaBar: f32(tables.alphaBar, [T1.T]),
  };
}
