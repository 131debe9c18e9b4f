/**
 * Host-side layout building for the data pipeline: rows of segments in, the i32 layout buffers out
 * (every field, `prefix` included). Imports only the layout vocabulary (a file with no imports), so
 * data code stays free of the tracer and the compiler.
 */
import {
  ALL_LAYOUT_FIELDS,
  LAYOUT_FIELDS,
  type LayoutField,
  type LayoutFields,
  MODALITY,
  type SomeLayoutFields,
  type StandardLayoutField,
} from "../compiler/ir/mask.ts";

/**
 * A run of positions of one document. Consecutive segments with the same `doc` form one document
 * (packing: several documents per row). `prefix: true` puts the segment's positions in its
 * document's prefix (layout field prefix = 1), which `inPrefix()` lets every query of the document
 * see: a prefix-LM, each row or document with its own prefix length.
 */
export type Segment =
  | { readonly kind: "text"; readonly length: number; readonly doc: number; readonly prefix?: boolean }
  /**
   * rows * cols patches in row-major order, wrapped as BOI patches EOI unless `markers` is false.
   * BOI and EOI are text positions of the same document (the data pipeline writes their token ids).
   */
  | {
    readonly kind: "image";
    readonly rows: number;
    readonly cols: number;
    readonly doc: number;
    readonly markers?: boolean;
    readonly prefix?: boolean;
  };

/** Where a segment landed: positions [start, end) of row b. */
export interface PlacedSegment {
  readonly b: number;
  readonly segment: Segment;
  readonly start: number;
  readonly end: number;
  /** The image's span number in its row; -1 for text. */
  readonly span: number;
  /** The first patch (images) or the first token (text). BOI, if any, is at patchStart - 1. */
  readonly patchStart: number;
}

export interface BuiltLayout {
  readonly B: number;
  readonly T: number;
  readonly fields: Readonly<Record<LayoutField, Int32Array>>;
  /** Every segment, row by row in the given order. */
  readonly placed: readonly PlacedSegment[];
}

/** A layout field's input name (by default of a standard field, the ones `layoutInputs()` declares). */
export type LayoutInputName<F extends LayoutField = StandardLayoutField> = `layout_${F}`;

/** The model input that carries a field (see spec/layout.ts `layoutInputs`). */
export function layoutInputName<F extends LayoutField>(field: F): LayoutInputName<F> {
  return `layout_${field}`;
}

/**
 * The layout buffers keyed by their input names, to feed the interpreter or the executor: the
 * standard fields, or the ones a spec declares (`layoutInputs(dims, names)` with the same names).
 */
export function layoutFeed(fields: LayoutFields): Record<LayoutInputName, Int32Array>;
export function layoutFeed<F extends LayoutField>(
  fields: SomeLayoutFields,
  names: readonly F[],
): Record<LayoutInputName<F>, Int32Array>;
export function layoutFeed(
  fields: SomeLayoutFields,
  names: readonly LayoutField[] = LAYOUT_FIELDS,
): Record<string, Int32Array> {
  return Object.fromEntries(names.map((f) => {
    const values = fields[f];
    if (!values) throw new Error(`layoutFeed: the layout has no field "${f}"`);
    return [layoutInputName(f), values];
  }));
}

/** Number of positions a segment takes. */
export function segmentLength(s: Segment): number {
  return s.kind === "text" ? s.length : s.rows * s.cols + (s.markers === false ? 0 : 2);
}

/**
 * Lays out `rows` (one list of segments per batch row) in a [B, T] batch, padding each row after its
 * last segment. Span numbers count the images of a row from 0; text `pos` counts every position of
 * its document (images included), a patch's `pos` is its index in the image.
 */
export function buildLayout(rows: readonly (readonly Segment[])[], T: number): BuiltLayout {
  if (rows.length === 0) throw new Error("buildLayout: needs at least one row");
  if (!Number.isInteger(T) || T <= 0) throw new Error(`buildLayout: T must be a positive integer, got ${T}`);
  const B = rows.length;
  const fields = Object.fromEntries(ALL_LAYOUT_FIELDS.map((f) => [f, new Int32Array(B * T)])) as Record<
    LayoutField,
    Int32Array
  >;
  for (const f of ["doc", "modality", "span"] as const) fields[f].fill(-1);
  const placed: PlacedSegment[] = [];

  rows.forEach((segments, b) => {
    const used = segments.reduce((n, s) => n + segmentLength(checkSegment(s, b)), 0);
    if (used > T) {
      const parts = segments.map((s) => `${s.kind} ${segmentLength(s)}`).join(" + ");
      throw new Error(`buildLayout: row ${b} needs ${used} positions (${parts}), but T = ${T}`);
    }
    const finished = new Set<number>();
    let [t, doc, docStart, span, inPrefix] = [0, -1, 0, 0, 0];
    const put = (modality: number, spanId: number, pos: number, row = 0, col = 0) => {
      const at = b * T + t++;
      [fields.doc[at], fields.modality[at], fields.span[at]] = [doc, modality, spanId];
      [fields.pos[at], fields.row[at], fields.col[at]] = [pos, row, col];
      fields.prefix[at] = inPrefix;
    };
    const text = () => put(MODALITY.text, -1, t - docStart);
    for (const s of segments) {
      if (s.doc !== doc) {
        if (finished.has(s.doc)) {
          throw new Error(
            `buildLayout: row ${b} returns to document ${s.doc} after another one; docs must be runs`,
          );
        }
        finished.add(doc);
        [doc, docStart] = [s.doc, t];
      }
      const start = t;
      if (s.prefix === true && t > docStart && inPrefix === 0) {
        throw new Error(
          `buildLayout: row ${b}, document ${s.doc}: a prefix segment after a non-prefix one; ` +
            "the prefix must open its document",
        );
      }
      inPrefix = s.prefix === true ? 1 : 0;
      if (s.kind === "text") {
        for (let n = 0; n < s.length; n++) text();
        placed.push({ b, segment: s, start, end: t, span: -1, patchStart: start });
        continue;
      }
      const markers = s.markers !== false;
      if (markers) text();
      const patchStart = t;
      for (let p = 0; p < s.rows * s.cols; p++) {
        put(MODALITY.image, span, p, Math.floor(p / s.cols), p % s.cols);
      }
      if (markers) text();
      placed.push({ b, segment: s, start, end: t, span: span++, patchStart });
    }
  });
  return { B, T, fields, placed };
}

function checkSegment(s: Segment, b: number): Segment {
  const bad = (what: string, v: unknown) => {
    throw new Error(
      `buildLayout: row ${b}, ${s.kind} segment: ${what} must be ${v}, got ${JSON.stringify(s)}`,
    );
  };
  if (!Number.isInteger(s.doc) || s.doc < 0) bad("doc", "an integer >= 0");
  if (s.prefix !== undefined && typeof s.prefix !== "boolean") bad("prefix", "true, false or absent");
  if (s.kind === "text" && (!Number.isInteger(s.length) || s.length < 1)) bad("length", "an integer >= 1");
  if (s.kind === "image") {
    if (!Number.isInteger(s.rows) || s.rows < 1) bad("rows", "an integer >= 1");
    if (!Number.isInteger(s.cols) || s.cols < 1) bad("cols", "an integer >= 1");
  }
  return s;
}
