/**
 * Layouts for the mask and layout tests: hand-drawn ones (segments and the fields they must give,
 * written out by hand) and seeded random ones. Not a test file itself: tests import it.
 */
import type { LayoutField, MaskExpr } from "../compiler/ir/mask.ts";
import type { PositionExpr } from "../compiler/ir/position.ts";
import { buildLayout, type BuiltLayout, type Segment } from "../spec/layout_builder.ts";

export interface DrawnLayout {
  readonly name: string;
  readonly B: number;
  readonly T: number;
  readonly rows: readonly (readonly Segment[])[];
  /** Per field, B * T values (prefix: all 0 where not drawn). */
  readonly fields: { readonly [F in Exclude<LayoutField, "prefix">]: readonly number[] } & {
    readonly prefix?: readonly number[];
  };
}

/** Every field as an Int32Array, as `buildLayout` gives them. */
export type AllFields = Readonly<Record<LayoutField, Int32Array>>;

const text = (length: number, doc = 0, prefix = false): Segment => ({ kind: "text", length, doc, prefix });
const image = (rows: number, cols: number, doc = 0, prefix = false): Segment => ({
  kind: "image",
  rows,
  cols,
  doc,
  prefix,
});

// Legend in the comments: t text, B/E BOI/EOI (text), p patch, . padding.
export const DRAWN: readonly DrawnLayout[] = [
  {
    name: "text only", // t t t t
    B: 1,
    T: 4,
    rows: [[text(4)]],
    fields: {
      doc: [0, 0, 0, 0],
      modality: [0, 0, 0, 0],
      span: [-1, -1, -1, -1],
      pos: [0, 1, 2, 3],
      row: [0, 0, 0, 0],
      col: [0, 0, 0, 0],
    },
  },
  {
    name: "caption then a 2x2 image", // t t B p p p p E
    B: 1,
    T: 8,
    rows: [[text(2), image(2, 2)]],
    fields: {
      doc: [0, 0, 0, 0, 0, 0, 0, 0],
      modality: [0, 0, 0, 1, 1, 1, 1, 0],
      span: [-1, -1, -1, 0, 0, 0, 0, -1],
      pos: [0, 1, 2, 0, 1, 2, 3, 7],
      row: [0, 0, 0, 0, 0, 1, 1, 0],
      col: [0, 0, 0, 0, 1, 0, 1, 0],
    },
  },
  {
    name: "a 1x2 image then text", // B p p E t t .
    B: 1,
    T: 7,
    rows: [[image(1, 2), text(2)]],
    fields: {
      doc: [0, 0, 0, 0, 0, 0, -1],
      modality: [0, 1, 1, 0, 0, 0, -1],
      span: [-1, 0, 0, -1, -1, -1, -1],
      pos: [0, 0, 1, 3, 4, 5, 0],
      row: [0, 0, 0, 0, 0, 0, 0],
      col: [0, 0, 1, 0, 0, 0, 0],
    },
  },
  {
    name: "two images", // t B p p E B p p E (1x2, then 2x1)
    B: 1,
    T: 9,
    rows: [[text(1), image(1, 2), image(2, 1)]],
    fields: {
      doc: [0, 0, 0, 0, 0, 0, 0, 0, 0],
      modality: [0, 0, 1, 1, 0, 0, 1, 1, 0],
      span: [-1, -1, 0, 0, -1, -1, 1, 1, -1],
      pos: [0, 1, 0, 1, 4, 5, 0, 1, 8],
      row: [0, 0, 0, 0, 0, 0, 0, 1, 0],
      col: [0, 0, 0, 1, 0, 0, 0, 0, 0],
    },
  },
  {
    name: "two packed documents", // t t | B p p E t
    B: 1,
    T: 7,
    rows: [[text(2, 0), image(1, 2, 1), text(1, 1)]],
    fields: {
      doc: [0, 0, 1, 1, 1, 1, 1],
      modality: [0, 0, 0, 1, 1, 0, 0],
      span: [-1, -1, -1, 0, 0, -1, -1],
      pos: [0, 1, 0, 0, 1, 3, 4],
      row: [0, 0, 0, 0, 0, 0, 0],
      col: [0, 0, 0, 0, 1, 0, 0],
    },
  },
  {
    name: "prefix-LM rows", // P P P t t . / P t t t t t (each row its own prefix length)
    B: 2,
    T: 6,
    rows: [[text(3, 0, true), text(2)], [text(1, 0, true), text(5)]],
    fields: {
      doc: [0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0],
      modality: [0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0],
      span: [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
      pos: [0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5],
      row: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      col: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      prefix: [1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    },
  },
  {
    name: "packed prefix documents", // P P t | P B p p E t (an image in the second prefix)
    B: 1,
    T: 9,
    rows: [[text(2, 0, true), text(1, 0), text(1, 1, true), image(1, 2, 1, true), text(1, 1)]],
    fields: {
      doc: [0, 0, 0, 1, 1, 1, 1, 1, 1],
      modality: [0, 0, 0, 0, 0, 1, 1, 0, 0],
      span: [-1, -1, -1, -1, -1, 0, 0, -1, -1],
      pos: [0, 1, 2, 0, 1, 0, 1, 4, 5],
      row: [0, 0, 0, 0, 0, 0, 0, 0, 0],
      col: [0, 0, 0, 0, 0, 0, 1, 0, 0],
      prefix: [1, 1, 0, 1, 1, 1, 1, 1, 0],
    },
  },
  {
    name: "padding rows", // t t . / . . .
    B: 2,
    T: 3,
    rows: [[text(2)], []],
    fields: {
      doc: [0, 0, -1, -1, -1, -1],
      modality: [0, 0, -1, -1, -1, -1],
      span: [-1, -1, -1, -1, -1, -1],
      pos: [0, 1, 0, 0, 0, 0],
      row: [0, 0, 0, 0, 0, 0],
      col: [0, 0, 0, 0, 0, 0],
    },
  },
];

export function drawn(name: string): DrawnLayout {
  const hit = DRAWN.find((d) => d.name === name);
  if (!hit) throw new Error(`no drawn layout "${name}"`);
  return hit;
}

/** The drawn fields as Int32Arrays (taken from the literals, not from buildLayout). */
export function drawnFields(d: DrawnLayout): AllFields {
  const f = d.fields;
  return {
    doc: Int32Array.from(f.doc),
    modality: Int32Array.from(f.modality),
    span: Int32Array.from(f.span),
    pos: Int32Array.from(f.pos),
    row: Int32Array.from(f.row),
    col: Int32Array.from(f.col),
    prefix: f.prefix ? Int32Array.from(f.prefix) : new Int32Array(d.B * d.T),
  };
}

// ---------------------------------------------------------------------------------------------
// seeded random cases

export type Rand = () => number;

/** mulberry32: a small seeded generator, so failures reproduce. */
export function seeded(seed: number): Rand {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export const randInt = (rand: Rand, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

/** A well-formed packed batch: random documents of text runs and images, padded at random. */
export function randomLayout(rand: Rand, maxB: number, maxT: number): BuiltLayout {
  const B = randInt(rand, 1, maxB);
  const T = randInt(rand, 1, maxT);
  const rows = Array.from({ length: B }, () => {
    const budget = rand() < 0.3 ? randInt(rand, 0, T) : T;
    const segments: Segment[] = [];
    let [used, doc, opening] = [0, randInt(rand, 0, 3), true];
    for (;;) {
      if (rand() < 0.25) [doc, opening] = [doc + randInt(rand, 1, 4), true];
      // A document's first segments may form its prefix (a prefix-LM), the rest never do.
      const prefix = (opening &&= rand() < 0.5);
      const s: Segment = rand() < 0.5 ? text(randInt(rand, 1, 6), doc, prefix) : {
        kind: "image",
        rows: randInt(rand, 1, 3),
        cols: randInt(rand, 1, 4),
        doc,
        markers: rand() < 0.8,
        prefix,
      };
      const length = s.kind === "text" ? s.length : s.rows * s.cols + (s.markers === false ? 0 : 2);
      if (used + length > budget) break;
      segments.push(s);
      used += length;
    }
    return segments;
  });
  return buildLayout(rows, T);
}

/** Arbitrary field values in -1..3 with no structure at all: the classifier must be sound anyway. */
export function randomFields(rand: Rand, B: number, T: number): AllFields {
  const make = () => Int32Array.from({ length: B * T }, () => randInt(rand, -1, 3));
  return {
    doc: make(),
    modality: make(),
    span: make(),
    pos: make(),
    row: make(),
    col: make(),
    prefix: make(),
  };
}

/** A random mask rule of depth <= `depth`, with parameters around the row length T. */
export function randomMask(rand: Rand, depth: number, T: number): MaskExpr {
  const leaves: (() => MaskExpr)[] = [
    () => ({ kind: "all" }),
    () => ({ kind: "none" }),
    () => ({ kind: "causal" }),
    () => ({ kind: "sameDocument" }),
    () => ({ kind: "sameSpan", modality: randInt(rand, 0, 2) }),
    () => ({ kind: "prefix", n: randInt(rand, 0, T + 1) }),
    () => ({ kind: "window", w: randInt(rand, 1, T + 1) }),
    () => ({ kind: "inPrefix" }),
  ];
  if (depth <= 0 || rand() < 0.3) return leaves[randInt(rand, 0, leaves.length - 1)]!();
  const a = randomMask(rand, depth - 1, T);
  const r = rand();
  if (r < 0.2) return { kind: "not", a };
  return { kind: r < 0.6 ? "and" : "or", a, b: randomMask(rand, depth - 1, T) };
}

/** A random position rule of depth <= `depth`; token ids are drawn from 0..3. */
export function randomPosition(rand: Rand, depth: number): PositionExpr {
  const leaves: (() => PositionExpr)[] = [
    () => ({ kind: "modality", modality: randInt(rand, 0, 1) }),
    () => ({ kind: "token", id: randInt(rand, 0, 3) }),
    () => ({ kind: "valid" }),
  ];
  if (depth <= 0 || rand() < 0.3) return leaves[randInt(rand, 0, leaves.length - 1)]!();
  const a = randomPosition(rand, depth - 1);
  const r = rand();
  if (r < 0.2) return { kind: "not", a };
  if (r < 0.4) return { kind: "shift", by: randInt(rand, -3, 3) || 1, a };
  return { kind: r < 0.7 ? "and" : "or", a, b: randomPosition(rand, depth - 1) };
}
