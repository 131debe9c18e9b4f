/**
 * Attention masks in a spec: a small algebra over the sequence layout. A `Mask` is plain data (a
 * `MaskExpr`), so the compiler can hand it to a flash-attention kernel as a rule; `maskDense` turns
 * it into the bool [B, T, T] tensor the naive attention path takes. A rule reads only the layout
 * fields it needs (`fields()`): causal, window and fixed prefixes none, so they need no layout.
 *
 * @example The Transfusion mask: causal, bidirectional inside each image, never across documents.
 * ```ts
 * const mask = sameDocument().and(causal().or(sameSpan("image")));
 * attention(x, { mask, layout: layoutOf(inputs) });
 * ```
 * @example A prefix-LM over packed documents: each document's prefix (layout data) is seen whole.
 * ```ts
 * inputs: () => ({ tokens: input("i32", ["batch", "seq"]), ...layoutInputs(["batch", "seq"], ["doc", "prefix"]) }),
 * attention(x, { mask: sameDocument().and(causal().or(inPrefix())), layout: layoutOf(inputs) });
 * ```
 */
import {
  describeMask,
  foldMask,
  type LayoutField,
  type MaskExpr,
  maskFields,
  MODALITY,
  type ModalityName,
} from "../compiler/ir/mask.ts";
import { full, iota } from "./functions.ts";
import { layoutFields, layoutShape, requireFields, type SomeLayout } from "./layout.ts";
import { fail, type Tensor } from "./tensor.ts";

export class Mask {
  constructor(readonly expr: MaskExpr) {}
  and(other: Mask): Mask {
    return new Mask({ kind: "and", a: this.expr, b: other.expr });
  }
  or(other: Mask): Mask {
    return new Mask({ kind: "or", a: this.expr, b: other.expr });
  }
  not(): Mask {
    return new Mask({ kind: "not", a: this.expr });
  }
  /** The layout fields the rule reads (none for causal, window, prefix(n)). */
  fields(): LayoutField[] {
    return maskFields(this.expr);
  }
  toString(): string {
    return describeMask(this.expr);
  }
}

/** Every query sees every key. */
export const all = (): Mask => new Mask({ kind: "all" });
/** No query sees any key. */
export const none = (): Mask => new Mask({ kind: "none" });
/** Key j <= query i. */
export const causal = (): Mask => new Mask({ kind: "causal" });
/** Both positions in the same document (padding, doc -1, sees nothing and is seen by nothing). */
export const sameDocument = (): Mask => new Mask({ kind: "sameDocument" });
/** Both positions in the same span (image) of this modality. */
export function sameSpan(modality: ModalityName): Mask {
  const m = MODALITY[modality] as number | undefined;
  if (m === undefined) {
    fail("sameSpan", `unknown modality "${modality}"; known: ${Object.keys(MODALITY).join(", ")}`);
  }
  return new Mask({ kind: "sameSpan", modality: m });
}
/** Key j < n: the first n positions of every row are visible to every query (see `inPrefix` for per-row). */
export function prefix(n: number): Mask {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) fail("prefix", `n must be an integer >= 0, got ${n}`);
  return new Mask({ kind: "prefix", n });
}
/**
 * Key j is in its document's prefix (layout field `prefix` > 0, from `Segment.prefix`): with
 * `causal().or(inPrefix())` a prefix-LM where each row, or each packed document with
 * `sameDocument()`, has its own prefix length.
 */
export const inPrefix = (): Mask => new Mask({ kind: "inPrefix" });
/** |i - j| < w: a sliding window (w = 1 is the diagonal). */
export function window(w: number): Mask {
  if (!Number.isInteger(w) || w < 1 || w > 2 ** 31 - 1) fail("window", `w must be an integer >= 1, got ${w}`);
  return new Mask({ kind: "window", w });
}

/**
 * The dense mask, bool [B, T, T] (batch, query, key), true = may attend. Built from iota and
 * comparisons of the [B, T] layout fields broadcast as [B, T, 1] (query) against [B, 1, T] (key).
 * `layout` needs the fields the rule reads; a rule that reads none can take [B, T] instead.
 */
export function maskDense(mask: Mask, layout: SomeLayout | readonly [number, number]): Tensor<"bool", 3> {
  const shaped = Array.isArray(layout);
  const fields: SomeLayout = shaped ? {} : layout as SomeLayout;
  requireFields("maskDense", `the mask ${mask}`, mask.fields(), shaped ? undefined : fields);
  const [B, T] = shaped ? layout as readonly [number, number] : layoutShape(fields);
  return denseRule(mask, fields, fields, iota([B, T, T], 1, "i32"));
}

/**
 * The dense mask of a window of queries against a whole row, bool [B, L, S]: query i of row b is
 * the row's position start[b] + i, key j its position j (a KV cache's keys). The query fields are
 * read from the layout at those positions, so the rule is the one `maskDense` evaluates on the
 * full row, restricted to the window's rows. layout [B, S], start i32 [B].
 */
export function maskWindow(
  mask: Mask,
  layout: SomeLayout,
  start: Tensor<"i32", 1>,
  length: number,
): Tensor<"bool", 3> {
  requireFields("maskWindow", `the mask ${mask}`, mask.fields(), layout);
  const [B, S] = layoutShape(layout);
  const positions = windowPositions(start, length);
  return denseRule(
    mask,
    layout,
    layoutAt(layout, positions),
    positions.unsqueeze(2).broadcastTo([B, length, S]),
  );
}

/** i32 [B, L]: start[b] + i, the row positions of a window of L queries. */
export function windowPositions(start: Tensor<"i32", 1>, length: number): Tensor<"i32", 2> {
  const b = start.dim(0);
  return start.unsqueeze(1).add(iota([b, length], 1, "i32")) as Tensor<"i32", 2>;
}

/**
 * The layout fields at per-row positions: layout [B, S], positions i32 [B, L] -> a layout [B, L]
 * with the same fields. Positions outside [0, S) read position 0 or S - 1 (they belong to inactive rows).
 */
export function layoutAt<L extends SomeLayout>(layout: L, positions: Tensor<"i32", 2>): L {
  const [B, S] = layoutShape(layout);
  const L = positions.dim(1);
  // gather indexes axis 0: flatten the rows and index with b * S + position.
  const index = iota([B, L], 0, "i32").mul(S).add(positions.maximum(0).minimum(S - 1)) as Tensor<"i32", 2>;
  const at = (t: Tensor<"i32", 2>) => t.reshape([B * S]).gather(index) as Tensor<"i32", 2>;
  return Object.fromEntries(layoutFields(layout).map((f) => [f, at(layout[f]!)])) as unknown as L;
}

/**
 * The rule densely over [B, L, S]: `queries` [B, L] are the query positions' fields, `keys` [B, S]
 * the keys', and `i` [B, L, S] each query's position in the row (j, the key's, is the last axis).
 */
function denseRule(
  mask: Mask,
  keyFields: SomeLayout,
  queryFields: SomeLayout,
  i: Tensor<"i32", 3>,
): Tensor<"bool", 3> {
  const shape = i.shape as [number, number, number];
  const j = iota(shape, 2, "i32");
  // Callers checked that the rule's fields are present (requireFields).
  const keys = keyFields as Required<SomeLayout>;
  const queries = queryFields as Required<SomeLayout>;
  const atQuery = (t: Tensor<"i32", 2>) => t.unsqueeze(2); // [B, L, 1]
  const atKey = (t: Tensor<"i32", 2>) => t.unsqueeze(1); // [B, 1, S]
  const dense = foldMask<Tensor<"bool", number>>(mask.expr, {
    all: () => full(shape, 1, "bool"),
    none: () => full(shape, 0, "bool"),
    causal: () => j.le(i),
    sameDocument: () => {
      const doc = atQuery(queries.doc);
      return doc.eq(atKey(keys.doc)).and(doc.ge(0));
    },
    sameSpan: ({ modality }) => {
      const span = atQuery(queries.span);
      const here = (t: Tensor<"i32", 3>) => t.eq(modality);
      return span.eq(atKey(keys.span)).and(span.ge(0))
        .and(here(atQuery(queries.modality))).and(here(atKey(keys.modality)));
    },
    prefix: ({ n }) => j.lt(n),
    inPrefix: () => atKey(keys.prefix).gt(0),
    window: ({ w }) => i.sub(j).abs().lt(w),
    and: (e, sub) => sub(e.a).and(sub(e.b)),
    or: (e, sub) => sub(e.a).or(sub(e.b)),
    not: (e, sub) => sub(e.a).not(),
  });
  return dense.broadcastTo(shape);
}
