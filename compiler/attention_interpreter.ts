/**
 * The interpreter's rules for the attention ops: the mask rule is evaluated on the layout fields
 * (materialized as a predicate, which is fine for an oracle), then the f64 reference does the math.
 */
import { type AttentionArg, type LayoutField, maskAt, type Node } from "./ir/mod.ts";
import { type AllowedFn, attentionForwardRef } from "./attention_reference.ts";
import type { AttentionShape } from "../kernels/flash_attention_common.ts";

interface Raw {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

function setup(n: Node, src: readonly Raw[], extra: number) {
  const arg = n.arg as AttentionArg;
  const [q, k] = [src[0]!, src[1]!];
  const [batch, heads, t, d] = q.shape as [number, number, number, number];
  const s = k.shape[2]!;
  const shape: AttentionShape = { batch, heads, t, s, d };
  // Only the fields the op carries: the ones its rule reads.
  const fields: Partial<Record<LayoutField, Int32Array>> = {};
  arg.fields.forEach((f, i) => fields[f] = Int32Array.from(src[3 + extra + i]!.data));
  const allowed: AllowedFn = (b, i, j) => maskAt(arg.mask, fields, s, b, i + s - t, j);
  return { arg, shape, allowed };
}

/** [B, H, T, D + 1]: O, then the row's log-sum-exp in the last column. */
export function attentionRule(n: Node, src: readonly Raw[]): Float64Array {
  const { arg, shape, allowed } = setup(n, src, 0);
  const { o, lse } = attentionForwardRef(src[0]!.data, src[1]!.data, src[2]!.data, shape, arg.scale, allowed);
  const { d } = shape;
  const rows = lse.length;
  const out = new Float64Array(rows * (d + 1));
  for (let r = 0; r < rows; r++) {
    out.set(o.subarray(r * d, (r + 1) * d), r * (d + 1));
    out[r * (d + 1) + d] = lse[r]!;
  }
  return out;
}

/**
 * dQ ([B,H,T,D]) or dK|dV ([B,H,S,2D]) from lse, dO and delta as given (the IR computes delta), the
 * FA2 recurrence in f64: p = exp(s - lse), dS = p (dO.v - delta).
 */
export function attentionGradRule(n: Node, src: readonly Raw[], part: "q" | "kv"): Float64Array {
  const { arg, shape, allowed } = setup(n, src, 3);
  const { batch, heads, t, s, d } = shape;
  const [q, k, v, lse, dO, delta] = src.map((x) => x.data) as Float64Array[];
  const dq = new Float64Array(batch * heads * t * d);
  const dkv = new Float64Array(batch * heads * s * 2 * d);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const bh = b * heads + h;
      for (let i = 0; i < t; i++) {
        const row = (bh * t + i) * d;
        for (let j = 0; j < s; j++) {
          if (!allowed(b, i, j)) continue;
          const key = (bh * s + j) * d;
          let score = 0;
          let dp = 0;
          for (let e = 0; e < d; e++) {
            score += q![row + e]! * k![key + e]!;
            dp += dO![row + e]! * v![key + e]!;
          }
          const p = Math.exp(arg.scale * score - lse![bh * t + i]!);
          const ds = p * (dp - delta![bh * t + i]!);
          const out = (bh * s + j) * 2 * d;
          for (let e = 0; e < d; e++) {
            dq[row + e]! += arg.scale * ds * k![key + e]!;
            dkv[out + e]! += arg.scale * ds * q![row + e]!;
            dkv[out + d + e]! += p * dO![row + e]!;
          }
        }
      }
    }
  }
  return part === "q" ? dq : dkv;
}
