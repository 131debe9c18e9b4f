/**
 * The sequence layout in a spec: i32 [B, T] inputs (see compiler/ir/mask.ts for the fields) that the
 * data pipeline fills per batch, so masks and loss weights follow each batch's packing. A spec
 * declares the fields its rules read: `layoutInputs()` the standard six, `layoutInputs(dims, fields)`
 * any others (a prefix-LM over packed documents: `["doc", "prefix"]`); a causal or windowed LM none.
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
import {
  ALL_LAYOUT_FIELDS,
  LAYOUT_FIELDS,
  type LayoutField,
  type StandardLayoutField,
} from "../compiler/ir/mask.ts";
import { fail, type Tensor } from "./tensor.ts";
import { input, type InputDecl } from "./model.ts";
import { type LayoutInputName, layoutInputName } from "./layout_builder.ts";

export {
  ALL_LAYOUT_FIELDS,
  EXTRA_LAYOUT_FIELDS,
  LAYOUT_FIELDS,
  type LayoutField,
  MODALITY,
  type ModalityName,
  type StandardLayoutField,
} from "../compiler/ir/mask.ts";
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

/** The traced layout: one i32 [B, T] tensor per field (by default the standard fields). */
export type Layout<F extends LayoutField = StandardLayoutField> = {
  readonly [K in F]: Tensor<"i32", 2>;
};

/** Any subset of the layout fields: what a mask rule is evaluated on (it must have the ones it reads). */
export type SomeLayout = { readonly [F in LayoutField]?: Tensor<"i32", 2> };

export type LayoutInputs<F extends LayoutField = StandardLayoutField> = {
  readonly [K in F as LayoutInputName<K>]: InputDecl<"i32", 2>;
};

/**
 * `{ layout_doc: input("i32", dims), ... }`, to spread into a model's `inputs`: the standard fields,
 * or the ones named (a rule that reads no layout, such as `causal()`, needs none of them).
 */
export function layoutInputs<F extends LayoutField = StandardLayoutField>(
  dims: readonly [number | string, number | string] = ["batch", "seq"],
  fields: readonly F[] = LAYOUT_FIELDS as readonly LayoutField[] as readonly F[],
): LayoutInputs<F> {
  for (const f of fields) {
    if (!(ALL_LAYOUT_FIELDS as readonly string[]).includes(f)) {
      fail("layoutInputs", `unknown layout field "${f}"; known: ${ALL_LAYOUT_FIELDS.join(", ")}`);
    }
  }
  return Object.fromEntries(fields.map((f) => [layoutInputName(f), input("i32", dims)])) as LayoutInputs<F>;
}

/** The fields whose `layout_<field>` inputs an inputs object has. */
export type FieldsOf<X> = {
  [K in keyof X]: K extends `layout_${infer F}` ? F extends LayoutField ? F : never : never;
}[keyof X];

/**
 * Picks the layout tensors out of a loss function's inputs: every `layout_<field>` input there is
 * (at least one; spread `layoutInputs()` into the inputs). Untyped inputs (`x as never`) give the
 * standard layout.
 */
export function layoutOf<X extends object>(
  x: X,
): [X] extends [never] ? Layout : Layout<FieldsOf<X>> {
  const out: Partial<Record<LayoutField, Tensor<"i32", 2>>> = {};
  const inputs = x as Readonly<Record<string, Tensor<"i32", 2> | undefined>>;
  for (const f of ALL_LAYOUT_FIELDS) {
    const t = inputs[layoutInputName(f)];
    if (t === undefined) continue;
    if (t.dtype !== "i32" || t.rank !== 2) {
      fail("layoutOf", `"${layoutInputName(f)}" must be i32 [B, T], got ${t}`);
    }
    out[f] = t;
  }
  const present = ALL_LAYOUT_FIELDS.filter((f) => out[f]);
  if (present.length === 0) {
    fail(
      "layoutOf",
      `the inputs have no layout_<field> input (${Object.keys(x).join(", ")}); spread layoutInputs()`,
    );
  }
  const first = out[present[0]!]!;
  for (const f of present) {
    if (out[f]!.shape.some((d, i) => d !== first.shape[i])) {
      fail("layoutOf", `layout fields differ in shape: ${present[0]} ${first}, ${f} ${out[f]}`);
    }
  }
  return out as never;
}

/** The layout fields present, in `ALL_LAYOUT_FIELDS` order. */
export function layoutFields(layout: SomeLayout): LayoutField[] {
  return ALL_LAYOUT_FIELDS.filter((f) => layout[f] !== undefined);
}

/** [B, T] of a layout (of any of its fields: they have one shape). */
export function layoutShape(layout: SomeLayout): readonly [number, number] {
  const f = layoutFields(layout)[0];
  if (f === undefined) fail("layoutShape", "the layout has no fields");
  const t = layout[f]!;
  return [t.dim(0), t.dim(1)];
}

/**
 * Throws unless the layout has every field in `needed` (those a rule reads), naming the rule, the
 * missing fields and how to declare them.
 */
export function requireFields(op: string, what: string, needed: readonly LayoutField[], layout?: SomeLayout) {
  const missing = needed.filter((f) => layout?.[f] === undefined);
  if (missing.length === 0) return;
  const have = layout ? layoutFields(layout) : [];
  fail(
    op,
    `${what} reads layout field(s) ${missing.join(", ")}, which ${
      layout ? `the layout lacks (it has ${have.join(", ") || "none"})` : "need a layout: pass { layout }"
    }; declare them with layoutInputs(dims, [${
      needed.map((f) => `"${f}"`).join(", ")
    }]) and pass layoutOf(x)`,
  );
}
