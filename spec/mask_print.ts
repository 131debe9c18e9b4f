/**
 * Masks for a person: `maskSource` writes a rule as a spec writes it (`sameDocument() & (causal() |
 * sameSpan("image"))`), and `printMask` draws its dense mask over a small layout, one grid per row
 * of the batch, for debugging a packing: '#' where query i (a line) may attend key j (a column),
 * '.' where it is masked. Above the grid, per key position: its index (mod 10), its kind (t text,
 * p image patch, . padding) with '[' ']' around each image span and '|' where a document ends, its
 * document id (where the row holds more than one), and '^' under a position in its document's prefix.
 *
 * @example
 * ```ts
 * const layout = buildLayout([[{ kind: "text", length: 2, doc: 0 }, { kind: "image", rows: 1, cols: 2, doc: 0 }]], 6);
 * console.log(printMask(sameDocument().and(causal().or(sameSpan("image"))), layout));
 * ```
 */
import {
  ALL_LAYOUT_FIELDS,
  denseMask,
  foldMask,
  type LayoutField,
  type MaskExpr,
  maskFields,
  MODALITY,
  modalityName,
  type SomeLayoutFields,
} from "../compiler/ir/mask.ts";
import { Mask } from "./mask.ts";
import { fail } from "./tensor.ts";

/** A layout on the host: B rows of T positions, and the fields (B * T values each) that are known. */
export interface PrintLayout {
  readonly B?: number;
  readonly T: number;
  readonly fields?: { readonly [F in LayoutField]?: ArrayLike<number> };
}

export interface PrintOptions {
  /** Only this row of the batch (default: every row). */
  readonly row?: number;
  readonly attend?: string;
  readonly masked?: string;
}

/** The widest row drawn: a grid is T characters by T lines. */
export const MAX_PRINTED_POSITIONS = 256;

/** The rule as spec code: calls for the leaves, `&`, `|` and `!` for and, or and not. */
export function maskSource(mask: Mask | MaskExpr): string {
  const expr = mask instanceof Mask ? mask.expr : mask;
  const wrap = (parent: string, child: MaskExpr, text: string) =>
    (child.kind === "and" || child.kind === "or") && child.kind !== parent ? `(${text})` : text;
  return foldMask<string>(expr, {
    all: () => "all()",
    none: () => "none()",
    causal: () => "causal()",
    sameDocument: () => "sameDocument()",
    sameSpan: ({ modality }) => `sameSpan(${JSON.stringify(modalityName(modality))})`,
    prefix: ({ n }) => `prefix(${n})`,
    inPrefix: () => "inPrefix()",
    window: ({ w }) => `window(${w})`,
    and: (e, sub) => `${wrap("and", e.a, sub(e.a))} & ${wrap("and", e.b, sub(e.b))}`,
    or: (e, sub) => `${wrap("or", e.a, sub(e.a))} | ${wrap("or", e.b, sub(e.b))}`,
    not: (e, sub) => (e.a.kind === "and" || e.a.kind === "or" ? `!(${sub(e.a)})` : `!${sub(e.a)}`),
  });
}

/** The dense mask of `mask` over `layout` as text grids (see the file comment for the legend). */
export function printMask(mask: Mask | MaskExpr, layout: PrintLayout, opts: PrintOptions = {}): string {
  const expr = mask instanceof Mask ? mask.expr : mask;
  const { T } = layout;
  const B = layout.B ?? 1;
  if (!Number.isInteger(T) || T < 1 || !Number.isInteger(B) || B < 1) {
    fail("printMask", `the layout must have B >= 1 rows of T >= 1 positions, got B = ${B}, T = ${T}`);
  }
  if (T > MAX_PRINTED_POSITIONS) {
    fail(
      "printMask",
      `T = ${T} is over the ${MAX_PRINTED_POSITIONS} positions a grid can show; print a shorter packing ` +
        `of the same segments (the rule reads per-position fields, so it draws the same pattern)`,
    );
  }
  const fields = hostFields(layout, B * T);
  const missing = maskFields(expr).filter((f) => fields[f] === undefined);
  if (missing.length) {
    const have = ALL_LAYOUT_FIELDS.filter((f) => fields[f] !== undefined);
    fail(
      "printMask",
      `the rule ${maskSource(expr)} reads layout field(s) ${missing.join(", ")}, which the layout lacks ` +
        `(it has ${have.join(", ") || "none"})`,
    );
  }
  const rows = opts.row === undefined ? [...Array(B).keys()] : [opts.row];
  for (const b of rows) {
    if (!Number.isInteger(b) || b < 0 || b >= B) fail("printMask", `row ${b} is outside 0..${B - 1}`);
  }
  const dense = denseMask(expr, fields, B, T);
  const [yes, no] = [opts.attend ?? "#", opts.masked ?? "."];
  const legend = `'${yes}' attends, '${no}' masked (a line per query, a column per key)`;
  const blocks = rows.map((b) => [`row ${b}:`, ...rowGrid(dense, fields, b, T, yes, no)].join("\n"));
  return [maskSource(expr), legend, ...blocks].join("\n") + "\n";
}

/** The fields given, as Int32Arrays, each checked to hold B * T values. */
function hostFields(layout: PrintLayout, length: number): SomeLayoutFields {
  const out: { [F in LayoutField]?: Int32Array } = {};
  for (const f of ALL_LAYOUT_FIELDS) {
    const values = layout.fields?.[f];
    if (values === undefined) continue;
    if (values.length !== length) {
      fail("printMask", `layout field "${f}" has ${values.length} values, expected B * T = ${length}`);
    }
    out[f] = Int32Array.from(values);
  }
  return out;
}

/** One row's header lines and grid. */
function rowGrid(
  dense: Uint8Array,
  f: SomeLayoutFields,
  b: number,
  T: number,
  yes: string,
  no: string,
): string[] {
  const at = (field: LayoutField, i: number) => f[field]?.[b * T + i];
  const kind = (i: number) => {
    if ((at("doc", i) ?? 0) < 0 || (at("modality", i) ?? 0) < 0) return ".";
    const m = at("modality", i);
    return m === undefined ? "t" : m === MODALITY.text ? "t" : m === MODALITY.image ? "p" : String(m % 10);
  };
  const positions = [...Array(T).keys()];
  const hasKinds = f.modality !== undefined || f.doc !== undefined;
  const width = String(T - 1).length + (hasKinds ? 2 : 0);
  const margin = " ".repeat(width);
  const header = [`${margin} ${positions.map((i) => i % 10).join(" ")}`];
  if (hasKinds) header.push(`${margin}${kindLine(positions.map(kind), f, b, T)}`);
  const docs = new Set(positions.map((i) => at("doc", i)!).filter((d) => d >= 0));
  if (f.doc && docs.size > 1) {
    const doc = (i: number) => (at("doc", i)! < 0 ? "." : (at("doc", i)! % 36).toString(36));
    header.push(`${margin} ${positions.map(doc).join(" ")}`);
  }
  if (f.prefix && positions.some((i) => at("prefix", i)! > 0)) {
    header.push(`${margin} ${positions.map((i) => (at("prefix", i)! > 0 ? "^" : " ")).join(" ").trimEnd()}`);
  }
  const lines = positions.map((i) => {
    const label = `${String(i).padStart(String(T - 1).length)}${hasKinds ? ` ${kind(i)}` : ""}`;
    const cells = positions.map((j) => (dense[(b * T + i) * T + j] ? yes : no));
    return `${label} ${cells.join(" ")}`;
  });
  return [...header, ...lines];
}

/**
 * The kinds, each after a separator that marks structure: '[' before an image span's first patch,
 * ']' after its last, '|' between two documents (and where one span ends as the next begins).
 */
function kindLine(kinds: readonly string[], f: SomeLayoutFields, b: number, T: number): string {
  const span = (
    i: number,
  ) => (f.span && f.modality?.[b * T + i] === MODALITY.image ? f.span[b * T + i]! : -1);
  const doc = (i: number) => f.doc?.[b * T + i] ?? 0;
  let out = "";
  for (let i = 0; i < T; i++) {
    const opens = span(i) >= 0 && (i === 0 || span(i - 1) !== span(i));
    const closes = i > 0 && span(i - 1) >= 0 && span(i - 1) !== span(i);
    const newDoc = i > 0 && doc(i) !== doc(i - 1);
    out += (opens && closes ? "|" : opens ? "[" : closes ? "]" : newDoc ? "|" : " ") + kinds[i];
  }
  return span(T - 1) >= 0 ? `${out}]` : out;
}
