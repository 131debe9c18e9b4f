import { fmtShape, maskFields, node } from "../../compiler/ir/mod.ts";
import { requireFields, type SomeLayout } from "../layout.ts";
import type { Mask } from "../mask.ts";
import { fail, Tensor } from "../tensor.ts";

/**
 * Masked attention as one op: q [B, H, T, Dh], k and v [B, H, S, Dh] -> [B, H, T, Dh]. The mask is a
 * rule over the layout (`sameDocument().and(causal().or(sameSpan("image")))`), evaluated inside the
 * flash-attention kernels: no [T, S] mask or score matrix is ever in memory. Queries are the last T
 * of the S layout positions. A query with no allowed key gets a zero output. The layout needs only
 * the fields the rule reads (`mask.fields()`); causal, window and prefix(n) need none.
 */
export function flashAttention(
  q: Tensor<"f32", 4>,
  k: Tensor<"f32", 4>,
  v: Tensor<"f32", 4>,
  mask: Mask,
  layout: SomeLayout = {},
  opts: { scale?: number } = {},
): Tensor<"f32", 4> {
  const d = q.dim(-1);
  const s = k.dim(2);
  const fields = maskFields(mask.expr);
  requireFields("flashAttention", `the mask ${mask}`, fields, layout);
  for (const f of fields) {
    const x = layout[f]!;
    if (x.rank !== 2 || x.dim(0) !== q.dim(0) || x.dim(1) !== s) {
      fail("flashAttention", `layout field ${f} must be i32 [${q.dim(0)}, ${s}], got ${fmtShape(x.shape)}`);
    }
  }
  const packed = node("attention", [q.node, k.node, v.node, ...fields.map((f) => layout[f]!.node)], {
    mask: mask.expr,
    scale: opts.scale ?? 1 / Math.sqrt(d),
    fields,
  });
  // The last column holds each row's log-sum-exp for the backward pass; the output is the rest.
  return new Tensor<"f32", 4>(packed).slice(-1, 0, d);
}
