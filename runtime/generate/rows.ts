/**
 * Rows as interleaved generation grows them, and their assembly into the typed arrays of the
 * Transfusion entries. A row is one document: one token id per position (image patches hold 0)
 * plus its images, each BOI, P patches (row-major), EOI. Host code only (no tracer, no compiler).
 */
import { buildLayout, layoutFeed, type LayoutInputName, type Segment } from "../../spec/layout_builder.ts";
import { type SequenceConfig, sequenceGeometry } from "../../spec/transfusion/sequence.ts";
import { SPECIAL, type Tokenizer } from "../tokenizer.ts";

export interface RowImage {
  /** Position of the first patch: BOI is at start - 1, EOI (once the image is done) at start + P. */
  readonly start: number;
  /** C*H*W values in the model's range: x_t while the image is drawn, the clean image after. */
  readonly pixels: Float32Array;
}

export interface Row {
  /** One id per position so far; image patches hold 0. */
  readonly tokens: readonly number[];
  readonly images: readonly RowImage[];
}

/** Stands in for a batch row that is not run: a lone BOS, so no attention row is empty. */
export const IDLE_ROW: Row = { tokens: [SPECIAL.bos], images: [] };

/** The sizes rows are assembled with. */
export interface RowGeometry {
  /** Positions per row. */
  readonly seq: number;
  /** Image slots per row. */
  readonly N: number;
  /** Patches per image, grid * grid. */
  readonly P: number;
  readonly grid: number;
  /** Values per image, C * size * size. */
  readonly pixels: number;
  readonly vocab: number;
  readonly tokenizer: Tokenizer;
}

export function rowGeometry(config: SequenceConfig): RowGeometry {
  const g = sequenceGeometry(config);
  return { ...g, vocab: config.text.vocab };
}

/** `row` cut to its first `length` positions; an image is kept only if all its patches are. */
export function rowPrefix(row: Row, length: number, g: RowGeometry): Row {
  return {
    tokens: row.tokens.slice(0, length),
    images: row.images.filter((img) => img.start + g.P <= length),
  };
}

/** Tokens [B, seq], layout_* [B, seq], images [B, N, C*H*W], patch_pos [B, N, P], image_valid [B, N]. */
export interface AssembledRows {
  readonly tokens: Int32Array;
  readonly layout: Record<LayoutInputName, Int32Array>;
  readonly images: Float32Array;
  readonly patchPos: Int32Array;
  readonly imageValid: Float32Array;
}

/** Lays out `rows` (one per batch row) as the entries expect; positions past a row are padding. */
export function assembleRows(rows: readonly Row[], g: RowGeometry): AssembledRows {
  const B = rows.length;
  const { fields } = buildLayout(rows.map((row, b) => rowSegments(row, b, g)), g.seq);
  const tokens = new Int32Array(B * g.seq).fill(g.tokenizer.padId);
  const images = new Float32Array(B * g.N * g.pixels);
  const patchPos = new Int32Array(B * g.N * g.P).fill(-1);
  const imageValid = new Float32Array(B * g.N);
  rows.forEach((row, b) => {
    tokens.set(row.tokens, b * g.seq);
    row.images.forEach((img, n) => {
      const slot = b * g.N + n;
      images.set(img.pixels, slot * g.pixels);
      for (let p = 0; p < g.P; p++) patchPos[slot * g.P + p] = img.start + p;
      imageValid[slot] = 1;
    });
  });
  return { tokens, layout: layoutFeed(fields), images, patchPos, imageValid };
}

/** Text runs between the images; images without markers, since BOI and EOI are ordinary tokens here. */
function rowSegments(row: Row, b: number, g: RowGeometry): Segment[] {
  const fail = (what: string) => {
    throw new Error(`rows: row ${b} ${what}`);
  };
  if (row.tokens.length < 1 || row.tokens.length > g.seq) {
    fail(`has ${row.tokens.length} positions (1..${g.seq})`);
  }
  if (row.images.length > g.N) fail(`has ${row.images.length} images; the model has ${g.N} slots`);
  const segments: Segment[] = [];
  let at = 0;
  for (const img of row.images) {
    if (img.start < at || img.start + g.P > row.tokens.length) {
      fail(`has an image at ${img.start} out of order`);
    }
    if (img.pixels.length !== g.pixels) fail(`has an image of ${img.pixels.length} values, not ${g.pixels}`);
    if (img.start > at) segments.push({ kind: "text", length: img.start - at, doc: 0 });
    segments.push({ kind: "image", rows: g.grid, cols: g.grid, doc: 0, markers: false });
    at = img.start + g.P;
  }
  if (row.tokens.length > at) segments.push({ kind: "text", length: row.tokens.length - at, doc: 0 });
  return segments;
}
