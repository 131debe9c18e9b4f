/**
 * Row templates: a declarative description of one training row as a sequence of text slots and
 * images, from which the layout, the token ids and the image bookkeeping of the Transfusion entries
 * are derived (row_view.ts adds the attention mask and the loss positions). Plain data, so a
 * template can live in a spec's config (`transfusion({ row: row(...) })`) and in run.json.
 *
 * @example Two images per row with text between:
 * ```ts
 * const template = row(text("caption", 16), image("first"), text("between", 8), image("second"));
 * // BOS, caption slot (16), BOI patches EOI, between slot (8), BOI patches EOI
 * ```
 *
 * Every row starts with BOS. A text slot holds its text's bytes, then EOS, then the pad id, cut to
 * its length (a caption slot, as T1 lays it out); an image is BOI, P patches (row-major), EOI. A
 * text slot given `null` is left out of the row (its condition dropped: classifier-free guidance).
 * Host code only: no tracer, so the data pipeline and the generated module can import it.
 */
import type { LayoutFields } from "../../compiler/ir/mask.ts";
import { buildLayout, type Segment } from "../layout_builder.ts";
import { fitLength, SPECIAL, type Tokenizer } from "../../runtime/tokenizer.ts";

/** A text slot of `length` positions. */
export interface TextSpan {
  readonly kind: "text";
  readonly name: string;
  readonly length: number;
}

/**
 * One image. `limitNoise`: in training its timestep stays below diffusion.noiseLimit when a text
 * slot follows it in the row (captioning learns from a nearly clean image, as in the paper).
 */
export interface ImageSpan {
  readonly kind: "image";
  readonly name: string;
  readonly limitNoise: boolean;
}

export type RowSpan = TextSpan | ImageSpan;

/** The spans of a row after its BOS, in order. */
export interface RowTemplate {
  readonly spans: readonly RowSpan[];
}

/** A text slot named `name` of `length` positions (text bytes, EOS, then padding). */
export function text(name: string, length: number): TextSpan {
  return { kind: "text", name, length };
}

/** An image (BOI, patches, EOI); unnamed images are called image1, image2, ... by `row`. */
export function image(name = "", opts: { readonly limitNoise?: boolean } = {}): ImageSpan {
  return { kind: "image", name, limitNoise: opts.limitNoise ?? false };
}

/** A row template from its spans; names images left unnamed and checks the template. */
export function row(...spans: readonly RowSpan[]): RowTemplate {
  let n = 0;
  const named = spans.map((s) => (s.kind === "image" ? { ...s, name: s.name || `image${++n}` } : s));
  return checkTemplate({ spans: named }, "row");
}

/** Caption-first rows (T1): BOS, the caption slot, then `images` images. */
export function captionFirstRow(captionLength: number, images: number): RowTemplate {
  return row(text("caption", captionLength), ...Array.from({ length: images }, () => image()));
}

/** Image-first rows (captioning): BOS, `images` noise-limited images, then the caption slot. */
export function imageFirstRow(captionLength: number, images: number): RowTemplate {
  const shown = Array.from({ length: images }, () => image("", { limitNoise: true }));
  return row(...shown, text("caption", captionLength));
}

/** Throws an Error naming `where` and the bad span unless the template can be laid out. */
export function checkTemplate(template: RowTemplate, where: string): RowTemplate {
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what} (template ${describeTemplate(template)})`);
  };
  if (!template || !Array.isArray(template.spans)) fail("a row template needs a list of spans");
  const names = new Set<string>();
  template.spans.forEach((s, i) => {
    if (s?.kind !== "text" && s?.kind !== "image") fail(`span ${i} must be text(...) or image(...)`);
    if (typeof s.name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.name)) {
      fail(`span ${i} has name ${JSON.stringify(s.name)}; names are letters, digits and _`);
    }
    if (names.has(s.name)) fail(`the name "${s.name}" is used twice`);
    names.add(s.name);
    if (s.kind === "text" && (!Number.isInteger(s.length) || s.length < 1)) {
      fail(`text "${s.name}" has length ${s.length}; it must be an integer >= 1`);
    }
    if (s.kind === "image" && typeof s.limitNoise !== "boolean") {
      fail(`image "${s.name}" has limitNoise ${JSON.stringify(s.limitNoise)}; true or false`);
    }
  });
  return template;
}

/** `text:caption(16) image:image1 text:between(8) image:image2`: the template in one line. */
export function describeTemplate(template: RowTemplate): string {
  const spans = Array.isArray(template?.spans) ? template.spans : [];
  return spans.map((s) => (s.kind === "text" ? `text:${s.name}(${s.length})` : `image:${s.name}`)).join(" ");
}

/** Positions a template takes, BOS included, with P patches per image. */
export function templateLength(template: RowTemplate, P: number): number {
  return 1 + template.spans.reduce((n, s) => n + (s.kind === "text" ? s.length : P + 2), 0);
}

/** The images of a template, in order. */
export function templateImages(template: RowTemplate): ImageSpan[] {
  return template.spans.filter((s): s is ImageSpan => s.kind === "image");
}

/** The sizes a row is laid out with (a SequenceGeometry is one). */
export interface RowSizes {
  /** Positions per row. */
  readonly seq: number;
  /** Image slots per row. */
  readonly N: number;
  /** Patches per image, grid * grid. */
  readonly P: number;
  readonly grid: number;
  readonly tokenizer: Tokenizer;
}

/**
 * What fills a template's text slots, by span name: a string (its UTF-8 bytes, then EOS), raw ids
 * (then the pad id; no EOS is added), or null (the slot is left out). A name missing is an error.
 */
export type RowTexts = Readonly<Record<string, string | readonly number[] | null>>;

/** One row to lay out: a template and its texts. */
export interface RowFill {
  readonly template: RowTemplate;
  readonly texts: RowTexts;
}

/** Where a span landed in its row; `null` texts are absent from the list. */
export interface PlacedSpan {
  readonly span: RowSpan;
  /** Positions [start, end): a text slot's first id, or an image's BOI; end is past EOI. */
  readonly start: number;
  readonly end: number;
  /** Images: the image's slot in the row (0..N-1); -1 for text. */
  readonly slot: number;
}

/** B laid-out rows: everything the entries take but the image values. */
export interface LaidOutRows {
  /** [B, seq] */
  readonly tokens: Int32Array;
  readonly fields: LayoutFields;
  /** [B, N, P]; -1 for an absent image. */
  readonly patchPos: Int32Array;
  /** [B, N]: 1 where the slot holds an image (its diffusion loss counts). */
  readonly imageValid: Float32Array;
  /** [B, N]: 1 where the image's training timestep is noise-limited. */
  readonly imageFirst: Float32Array;
  /** Per row, its spans in order. */
  readonly spans: readonly (readonly PlacedSpan[])[];
  /** Per row, the text bytes cut off its slots (0: every text fit). */
  readonly truncated: readonly number[];
}

type Piece =
  | { readonly kind: "text"; readonly ids: readonly number[]; readonly span?: TextSpan }
  | { readonly kind: "image"; readonly span: ImageSpan; readonly limited: boolean };

/** Lays out `rows` (one template and its texts per batch row) in [B, seq]; padding after each row. */
export function layOutRows(rows: readonly RowFill[], g: RowSizes): LaidOutRows {
  const B = rows.length;
  if (B < 1) throw new Error("layOutRows: needs at least one row");
  const made = rows.map((fill, b) => rowPieces(fill, g, b));
  const pieces = made.map((m) => m.pieces);
  const truncated = made.map((m) => m.truncated);
  const segments = pieces.map((row) =>
    row.map((piece): Segment =>
      piece.kind === "text"
        ? { kind: "text", length: piece.ids.length, doc: 0 }
        : { kind: "image", rows: g.grid, cols: g.grid, doc: 0 }
    )
  );
  const { fields, placed } = buildLayout(segments, g.seq);
  const tokens = new Int32Array(B * g.seq).fill(g.tokenizer.padId);
  const patchPos = new Int32Array(B * g.N * g.P).fill(-1);
  const imageValid = new Float32Array(B * g.N);
  const imageFirst = new Float32Array(B * g.N);
  const spans: PlacedSpan[][] = rows.map(() => []);
  // buildLayout lists the placed segments row by row in the given order, as `pieces.flat()` does.
  pieces.flat().forEach((piece, i) => {
    const { b, start, end, span, patchStart } = placed[i]!;
    const at = b * g.seq;
    if (piece.kind === "text") {
      tokens.set(piece.ids, at + start);
      if (piece.span) spans[b]!.push({ span: piece.span, start, end, slot: -1 });
      return;
    }
    tokens[at + start] = SPECIAL.boi;
    tokens.fill(0, at + patchStart, at + patchStart + g.P);
    tokens[at + end - 1] = SPECIAL.eoi;
    const slot = b * g.N + span;
    for (let p = 0; p < g.P; p++) patchPos[slot * g.P + p] = patchStart + p;
    imageValid[slot] = 1;
    imageFirst[slot] = piece.limited ? 1 : 0;
    spans[b]!.push({ span: piece.span, start, end, slot: span });
  });
  return { tokens, fields, patchPos, imageValid, imageFirst, spans, truncated };
}

/** The ids of a text slot of `length` and how many bytes were cut off. */
export function slotIds(
  value: string | readonly number[],
  length: number,
  tokenizer: Tokenizer,
): { ids: number[]; truncated: number } {
  if (typeof value !== "string") return { ids: fitLength(tokenizer, [...value], length), truncated: 0 };
  const bytes = tokenizer.encode(value);
  const ids = fitLength(tokenizer, [...bytes, SPECIAL.eos], length);
  return { ids, truncated: Math.max(0, bytes.length - length) };
}

function rowPieces(fill: RowFill, g: RowSizes, b: number): { pieces: Piece[]; truncated: number } {
  const { template, texts } = fill;
  const where = `row ${b}`;
  checkTemplate(template, where);
  const images = templateImages(template).length;
  if (images > g.N) {
    throw new Error(`${where}: the template has ${images} images; the model has ${g.N} slots (imagesPerRow)`);
  }
  const present = template.spans.map((s) => {
    if (s.kind === "image") return true;
    if (!(s.name in texts)) {
      throw new Error(
        `${where}: no text for slot "${s.name}" (give a string, ids, or null to leave it out; ` +
          `template ${describeTemplate(template)})`,
      );
    }
    return texts[s.name] !== null;
  });
  let truncated = 0;
  const pieces: Piece[] = [{ kind: "text", ids: [SPECIAL.bos] }];
  template.spans.forEach((s, i) => {
    if (!present[i]) return;
    if (s.kind === "image") {
      const textAfter = template.spans.some((later, j) => j > i && later.kind === "text" && present[j]);
      pieces.push({ kind: "image", span: s, limited: s.limitNoise && textAfter });
      return;
    }
    const value = texts[s.name]!;
    if (typeof value !== "string") {
      if (value.length > s.length) {
        throw new Error(`${where}: text "${s.name}" has ${value.length} ids; its slot holds ${s.length}`);
      }
      const bad = value.find((id) => !Number.isInteger(id) || id < 0);
      if (bad !== undefined) throw new Error(`${where}: text "${s.name}" has id ${bad}`);
    }
    const slot = slotIds(value, s.length, g.tokenizer);
    truncated += slot.truncated;
    pieces.push({ kind: "text", ids: slot.ids, span: s });
  });
  return { pieces, truncated };
}
