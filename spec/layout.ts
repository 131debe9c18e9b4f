/**
 * The sequence layout in a spec: six i32 [B, T] inputs (see compiler/ir/mask.ts for the fields) that
 * the data pipeline fills per batch, so masks and loss weights follow each batch's packing.
 *
 * @example
 * ```ts
 * inputs: (c) => ({ tokens: input("i32", ["batch", "seq"]), ...layoutInputs() }),
 * loss: (p, x) => {
 *   const layout = layoutOf(x);
 *   const mask = maskDense(sameDocument().and(causal().or(sameSpan("image"))), layout);
 *   ...
 * },
 * ```
 */
import { LAYOUT_FIELDS, type LayoutField } from "../compiler/ir/mask.ts";
import { fail, type Tensor } from "./tensor.ts";
import { input, type InputDecl } from "./model.ts";
import { type LayoutInputName, layoutInputName } from "./layout_builder.ts";

export { LAYOUT_FIELDS, type LayoutField, MODALITY, type ModalityName } from "../compiler/ir/mask.ts";
export {
  buildLayout,
  type BuiltLayout,
  layoutFeed,
  type LayoutInputName,
  layoutInputName,
  type PlacedSegment,
  type Segment,
  segmentLength,
} from "./layout_builder.ts";

/** The traced layout: one i32 [B, T] tensor per field. */
export type Layout = { readonly [F in LayoutField]: Tensor<"i32", 2> };

export type LayoutInputs = { readonly [N in LayoutInputName]: InputDecl<"i32", 2> };

/** `{ layout_doc: input("i32", dims), ... }`, to spread into a model's `inputs`. */
export function layoutInputs(
  dims: readonly [number | string, number | string] = ["batch", "seq"],
): LayoutInputs {
  return Object.fromEntries(
    LAYOUT_FIELDS.map((f) => [layoutInputName(f), input("i32", dims)]),
  ) as LayoutInputs;
}

/** Picks the layout tensors out of a loss function's inputs. */
export function layoutOf(x: { readonly [N in LayoutInputName]: Tensor<"i32", 2> }): Layout {
  const out = {} as Record<LayoutField, Tensor<"i32", 2>>;
  for (const f of LAYOUT_FIELDS) {
    const t = x[layoutInputName(f)];
    if (t === undefined) {
      fail("layoutOf", `the inputs have no "${layoutInputName(f)}"; spread layoutInputs()`);
    }
    if (t.dtype !== "i32" || t.rank !== 2) {
      fail("layoutOf", `"${layoutInputName(f)}" must be i32 [B, T], got ${t}`);
    }
    out[f] = t;
  }
  const shape = out.doc.shape;
  for (const f of LAYOUT_FIELDS) {
    if (out[f].shape.some((d, i) => d !== shape[i])) {
      fail("layoutOf", `layout fields differ in shape: doc ${out.doc}, ${f} ${out[f]}`);
    }
  }
  return out;
}

/** [B, T] of a layout. */
export function layoutShape(layout: Layout): readonly [number, number] {
  return [layout.doc.dim(0), layout.doc.dim(1)];
}
