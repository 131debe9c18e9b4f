import { fmtShape } from "../../compiler/ir/mod.ts";
import { iota, where } from "../functions.ts";
import { module } from "../params.ts";
import { fail, type Tensor } from "../tensor.ts";
import { softmax } from "./activations.ts";
import { linearNoBias } from "./linear.ts";
import { flashAttention } from "./flash_attention.ts";
import { Mask, maskDense } from "../mask.ts";
import type { SomeLayout } from "../layout.ts";

/** The score a disallowed key gets before softmax: finite, so a fully masked row never turns into NaN. */
export const MASKED_SCORE = -1e9;

export interface AttentionOptions {
  /**
   * Either a mask rule over the layout (with `layout`: the flash-attention op, no [T, T] tensor), or
   * a bool tensor [T, T] / [B, T, T], [query, key], true = may attend. Omitted: every query sees every key.
   */
  mask?: Tensor<"bool", number> | Mask;
  /** The per-position layout a mask rule reads: at least its fields (none for causal, window, prefix(n)). */
  layout?: SomeLayout;
  /** With a mask rule: evaluate it as a dense [B, T, T] tensor and attend naively (an oracle, a baseline). */
  dense?: boolean;
  /** Applied to q and k after the head split, [B, H, T, Dh] -> same (e.g. `(t) => rope1d(t, pos)`). */
  rope?: (qk: Tensor<"f32", 4>) => Tensor<"f32", 4>;
  /**
   * Sees this call's keys and values [B, H, T, Dh] (after `rope`) and returns the ones the queries
   * attend to, [B, H, S, Dh]. A KV cache with this window written in (S = the cache length; the mask
   * must then be a dense bool [B, T, S]), or the same tensors while a cache is being filled.
   */
  kv?: (k: Tensor<"f32", 4>, v: Tensor<"f32", 4>) => readonly [Tensor<"f32", 4>, Tensor<"f32", 4>];
}

type Apply = (x: Tensor<"f32", 3>, opts?: AttentionOptions) => Tensor<"f32", 3>;

/**
 * Multi-head self-attention. x: [B, T, D] -> [B, T, D], with D = heads * Dh.
 * Params: wq.w, wk.w, wv.w [D, D] and wo.w [D, D] (the output projection, init std `outStd`); no biases.
 *
 * Scores are q·k / sqrt(Dh); a masked-out (query, key) pair gets `MASKED_SCORE` instead. A query row
 * with no allowed key therefore has equal scores everywhere and attends uniformly to all keys: its
 * output is finite (the mean of the values) but meaningless, so leave such positions out of the loss.
 */
export function attention(dim: number, heads: number, opts: { std?: number; outStd?: number } = {}) {
  if (!Number.isInteger(heads) || heads <= 0 || dim % heads !== 0) {
    fail("attention", `dim ${dim} must split into heads = ${heads} equal parts`);
  }
  const std = opts.std ?? 0.02;
  return module(
    {
      wq: linearNoBias(dim, dim, { std }),
      wk: linearNoBias(dim, dim, { std }),
      wv: linearNoBias(dim, dim, { std }),
      wo: linearNoBias(dim, dim, { std: opts.outStd ?? std }),
    },
    (p): Apply => (x, call = {}) => {
      if (x.rank !== 3 || x.dim(-1) !== dim) {
        fail("attention", `expects x [B, T, ${dim}], got ${fmtShape(x.shape)}`);
      }
      const [b, t] = [x.dim(0), x.dim(1)];
      const dh = dim / heads;
      // [B, T, D] -> [B, H, T, Dh]
      const split = (y: Tensor<"f32", 3>) => y.reshape([b, t, heads, dh]).permute([0, 2, 1, 3]);
      const rope = call.rope ?? ((y) => y);
      const [q, kNew, vNew] = [rope(split(p.wq(x))), rope(split(p.wk(x))), split(p.wv(x))];
      const [k, v] = call.kv ? call.kv(kNew, vNew) : [kNew, vNew];
      const s = k.dim(2); // keys: T, or the cache length
      const merge = (o: Tensor<"f32", 4>) => p.wo(o.permute([0, 2, 1, 3]).reshape([b, t, dim]));
      let mask = call.mask;
      if (mask instanceof Mask) {
        if (!call.dense) return merge(flashAttention(q, k, v, mask, call.layout));
        mask = maskDense(mask, call.layout ?? [b, t]);
      }
      let scores = q.mul(1 / Math.sqrt(dh)).matmul(k.transpose()); // [B, H, T, S]
      if (mask) scores = where(headsMask(mask, b, t, s), scores, MASKED_SCORE);
      return merge(softmax(scores).matmul(v) as Tensor<"f32", 4>); // [B, H, T, Dh] before the merge
    },
  );
}

/** A [T, S] or [B, T, S] mask (S keys) as something that broadcasts against [B, H, T, S]. */
function headsMask(mask: Tensor<"bool", number>, b: number, t: number, s: number): Tensor<"bool", number> {
  const fits = mask.rank >= 2 && mask.dim(-1) === s && mask.dim(-2) === t;
  if (fits && mask.rank === 2) return mask;
  if (fits && mask.rank === 3 && mask.dim(0) === b) return mask.unsqueeze(1);
  return fail(
    "attention",
    `the mask must be bool [${t}, ${s}] or [${b}, ${t}, ${s}], got ${fmtShape(mask.shape)}`,
  );
}

/** bool [T, T], [query, key]: true where key <= query, so no position sees the future. */
export function causalMask(t: number): Tensor<"bool", 2> {
  return iota([t, t], 1, "i32").le(iota([t, t], 0, "i32"));
}
