/**
 * Masked attention in plain f64 TypeScript: the oracle for the flash attention kernels and the
 * interpreter's rule. Tensors are row-major: q, o, dO [B, H, T, D]; k, v [B, H, S, D]; lse [B, H, T].
 */
import type { AttentionShape } from "../kernels/flash_attention_common.ts";
import { EMPTY_ROW_LSE } from "../kernels/flash_attention_common.ts";

export type Values = Float64Array | Float32Array;

/** May query i attend key j in batch row b. */
export type AllowedFn = (b: number, i: number, j: number) => boolean;

export { EMPTY_ROW_LSE };

/** Calls `f(qBase, kBase, b, bh)` for every (batch, head): element offsets of q[b, h] and k[b, h]. */
function forEachHead(
  shape: AttentionShape,
  f: (qBase: number, kBase: number, b: number, bh: number) => void,
) {
  const { batch, heads, t, s, d } = shape;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const bh = b * heads + h;
      f(bh * t * d, bh * s * d, b, bh);
    }
  }
}

function dot(x: Values, xBase: number, y: Values, yBase: number, d: number): number {
  let sum = 0;
  for (let e = 0; e < d; e++) sum += x[xBase + e]! * y[yBase + e]!;
  return sum;
}

/** Scores of query row i against every key, NaN where not allowed. */
function scoresOf(
  q: Values,
  k: Values,
  qRow: number,
  kBase: number,
  shape: AttentionShape,
  scale: number,
  allowed: (j: number) => boolean,
): Float64Array {
  const { s, d } = shape;
  const out = new Float64Array(s);
  for (let j = 0; j < s; j++) out[j] = allowed(j) ? scale * dot(q, qRow, k, kBase + j * d, d) : NaN;
  return out;
}

/** o [B, H, T, D] and lse [B, H, T]; a row with no allowed key gets o = 0, lse = EMPTY_ROW_LSE. */
export function attentionForwardRef(
  q: Values,
  k: Values,
  v: Values,
  shape: AttentionShape,
  scale: number,
  allowed: AllowedFn,
): { o: Float64Array; lse: Float64Array } {
  const { batch, heads, t, s, d } = shape;
  const o = new Float64Array(batch * heads * t * d);
  const lse = new Float64Array(batch * heads * t).fill(EMPTY_ROW_LSE);
  forEachHead(shape, (qBase, kBase, b, bh) => {
    for (let i = 0; i < t; i++) {
      const scores = scoresOf(q, k, qBase + i * d, kBase, shape, scale, (j) => allowed(b, i, j));
      const max = scores.reduce((m, x) => (Number.isNaN(x) ? m : Math.max(m, x)), -Infinity);
      if (max === -Infinity) continue;
      let sum = 0;
      const acc = new Float64Array(d);
      for (let j = 0; j < s; j++) {
        if (Number.isNaN(scores[j]!)) continue;
        const p = Math.exp(scores[j]! - max);
        sum += p;
        for (let e = 0; e < d; e++) acc[e] = acc[e]! + p * v[kBase + j * d + e]!;
      }
      o.set(acc.map((x) => x / sum), qBase + i * d);
      lse[bh * t + i] = max + Math.log(sum);
    }
  });
  return { o, lse };
}

/**
 * dq, dk, dv for upstream gradient dO, recomputing p = exp(s - lse) as the kernels do; delta_i =
 * dO_i . o_i. Rows with no allowed key contribute nothing.
 */
export function attentionBackwardRef(
  q: Values,
  k: Values,
  v: Values,
  o: Values,
  lse: Values,
  dO: Values,
  shape: AttentionShape,
  scale: number,
  allowed: AllowedFn,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch, heads, t, s, d } = shape;
  const dq = new Float64Array(batch * heads * t * d);
  const dk = new Float64Array(batch * heads * s * d);
  const dv = new Float64Array(batch * heads * s * d);
  forEachHead(shape, (qBase, kBase, b, bh) => {
    for (let i = 0; i < t; i++) {
      const row = qBase + i * d;
      const scores = scoresOf(q, k, row, kBase, shape, scale, (j) => allowed(b, i, j));
      const delta = dot(dO, row, o, row, d);
      for (let j = 0; j < s; j++) {
        if (Number.isNaN(scores[j]!)) continue;
        const key = kBase + j * d;
        const p = Math.exp(scores[j]! - lse[bh * t + i]!);
        const ds = p * (dot(dO, row, v, key, d) - delta);
        for (let e = 0; e < d; e++) {
          dv[key + e] = dv[key + e]! + p * dO[row + e]!;
          dq[row + e] = dq[row + e]! + scale * ds * k[key + e]!;
          dk[key + e] = dk[key + e]! + scale * ds * q[row + e]!;
        }
      }
    }
  });
  return { dq, dk, dv };
}
