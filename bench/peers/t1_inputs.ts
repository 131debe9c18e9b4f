/**
 * Host-side inputs of T1 (../shared/benchmarks/T1.md) for the peer implementations: a random but
 * well-formed batch (caption-first rows, MNIST-like images in [-1, 1]) and the tables that follow
 * from T1's fixed layout (attention mask, 2-D RoPE angles, LM targets). Plain numbers only, so any
 * framework can take them.
 *
 * Layout of every row: BOS, caption (24), BOI, 64 patches, EOI = 91 positions.
 */
import { diffusionSchedule } from "../../spec/transfusion/schedule.ts";

export const T1 = {
  batch: 32,
  seq: 91,
  dim: 128,
  depth: 4,
  heads: 4,
  hidden: 512,
  vocab: 260,
  captionLength: 24,
  patchValues: 16, // 4x4 patch, 1 channel
  grid: 8, // 32x32 image / 4
  timestepDim: 128,
  normEps: 1e-5,
  ropeBase: 10000,
  initStd: 0.02,
  T: 1000,
  lambda: 5,
  adamw: { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01 },
} as const;

export const TOKEN = { bos: 256, eos: 257, boi: 258, eoi: 259 } as const;

/** Sequence positions of the first patch and of EOI. */
export const FIRST_PATCH = 2 + T1.captionLength; // 26
export const PATCHES = T1.grid * T1.grid; // 64
export const EOI_POSITION = FIRST_PATCH + PATCHES; // 90

export interface T1Batch {
  /** i32 [B, seq]: BOS, caption, BOI, 0 at patches, EOI. */
  readonly tokens: Int32Array<ArrayBuffer>;
  /** f32 [B, 1, 32, 32] in [-1, 1], the 28x28 digit area padded with -1. */
  readonly images: Float32Array<ArrayBuffer>;
  /** i32 [B, seq]: the token each position predicts (the next one; 0 past the end). */
  readonly targets: Int32Array<ArrayBuffer>;
  /** f32 [B, seq]: 1 where that prediction counts (caption tokens and EOI, BOI never). */
  readonly targetWeights: Float32Array<ArrayBuffer>;
}

/** Deterministic uniform numbers in [0, 1) (mulberry32), so every run sees the same batch. */
export function uniformStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

/** A batch in T1's layout: captions "a handwritten digit {d}" padded with EOS, noise digit images. */
export function t1Batch(seed = 1): T1Batch {
  const { batch: B, seq, captionLength } = T1;
  const next = uniformStream(seed);
  const tokens = new Int32Array(B * seq);
  const images = new Float32Array(B * 32 * 32).fill(-1);
  for (let b = 0; b < B; b++) {
    const caption = new TextEncoder().encode(`a handwritten digit ${Math.floor(next() * 10)}`);
    const row = tokens.subarray(b * seq, (b + 1) * seq);
    row[0] = TOKEN.bos;
    for (let i = 0; i < captionLength; i++) row[1 + i] = caption[i] ?? TOKEN.eos;
    row[1 + captionLength] = TOKEN.boi;
    row[EOI_POSITION] = TOKEN.eoi;
    for (let y = 2; y < 30; y++) {
      for (let x = 2; x < 30; x++) images[b * 1024 + y * 32 + x] = next() * 2 - 1;
    }
  }
  const targets = new Int32Array(B * seq);
  const targetWeights = new Float32Array(B * seq);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i + 1 < seq; i++) {
      targets[b * seq + i] = tokens[b * seq + i + 1]!;
      // Positions 0..23 predict the caption (24 predicts BOI: not a target); the last patch predicts EOI.
      const counted = i < captionLength || i === EOI_POSITION - 1;
      targetWeights[b * seq + i] = counted ? 1 : 0;
    }
  }
  return { tokens, images, targets, targetWeights };
}

/** bool as 0/1 [seq, seq]: causal, and bidirectional among the image's patches. */
export function t1Mask(): Uint8Array {
  const { seq } = T1;
  const isPatch = (i: number) => i >= FIRST_PATCH && i < EOI_POSITION;
  const mask = new Uint8Array(seq * seq);
  for (let q = 0; q < seq; q++) {
    for (let k = 0; k < seq; k++) mask[q * seq + k] = k <= q || (isPatch(q) && isPatch(k)) ? 1 : 0;
  }
  return mask;
}

/**
 * 2-D RoPE (rotate-half per half of the head dim, as spec/nn/rope.ts rope2d): cos and sin [seq, dh]
 * of the angle each dim is rotated by. A patch rotates by (row, col) of its grid cell, text by
 * (pos, pos).
 */
export function t1Rope(): { cos: Float32Array<ArrayBuffer>; sin: Float32Array<ArrayBuffer> } {
  const { seq, dim, heads, ropeBase, grid } = T1;
  const dh = dim / heads;
  const quarter = dh / 4; // pairs per half
  const cos = new Float32Array(seq * dh);
  const sin = new Float32Array(seq * dh);
  for (let t = 0; t < seq; t++) {
    const patch = t >= FIRST_PATCH && t < EOI_POSITION;
    const coords = patch ? [Math.floor((t - FIRST_PATCH) / grid), (t - FIRST_PATCH) % grid] : [t, t];
    for (let d = 0; d < dh; d++) {
      const half = Math.floor(d / (dh / 2));
      const pair = d % quarter;
      const angle = coords[half]! * Math.exp(-Math.log(ropeBase) * pair / quarter);
      cos[t * dh + d] = Math.cos(angle);
      sin[t * dh + d] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** DDPM cosine alpha_bar [T], the project's own table. */
export function t1AlphaBar(): Float32Array<ArrayBuffer> {
  return Float32Array.from(diffusionSchedule({ schedule: "cosine", T: T1.T }).alphaBar);
}
