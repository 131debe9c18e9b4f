/**
 * Attention masks as rules over a per-position sequence layout. The layout is data (i32 [B, T]
 * buffers the data pipeline fills per batch), the rule is plain JSON (an IR op argument), so one
 * compiled plan serves every packing of text, images, documents, prefixes and padding. A rule reads
 * only some fields (`maskFields`); causal, window and fixed-prefix rules read none.
 *
 * This file is the meaning of a rule: CPU evaluation (the oracle for the DSL's dense mask and for
 * the WGSL predicate) and a conservative tile classifier (which flash-attention tiles can be
 * skipped or need no mask). It imports nothing, so host-side data code can use it too.
 */

/**
 * The standard layout fields, all i32: what `layoutInputs()` declares and `layoutFeed` feeds unless
 * told otherwise (the Transfusion contract). Padding has doc = modality = span = -1, zeros elsewhere.
 */
export const LAYOUT_FIELDS = ["doc", "modality", "span", "pos", "row", "col"] as const;
/** Fields a spec declares only when its rules read them (`layoutInputs(dims, ["doc", "prefix"])`). */
export const EXTRA_LAYOUT_FIELDS = ["prefix"] as const;
/** Every layout field, standard ones first: the order an attention op lists the fields it reads. */
export const ALL_LAYOUT_FIELDS = [...LAYOUT_FIELDS, ...EXTRA_LAYOUT_FIELDS] as const;
/**
 * doc: document id in the row (-1 = padding); modality: 0 text, 1 image (-1 = padding);
 * span: image number in the row (-1 = text); pos: index inside the span for patches, inside the
 * document for text (the 1D RoPE position); row, col: patch coordinates (0 for text);
 * prefix: 1 where the position is in its document's prefix (seen by every query of a prefix-LM), else 0.
 */
export type LayoutField = typeof ALL_LAYOUT_FIELDS[number];
export type StandardLayoutField = typeof LAYOUT_FIELDS[number];

export const MODALITY = { text: 0, image: 1 } as const;
export type ModalityName = keyof typeof MODALITY;

/**
 * A batch's layout on the host: per field an Int32Array [B * T], row-major. The standard fields are
 * always there; `prefix` where the data has prefixes (`buildLayout` always fills it).
 */
export type LayoutFields = Readonly<Record<StandardLayoutField, Int32Array>> & {
  readonly prefix?: Int32Array;
};
/** Some of a batch's layout fields: enough for a rule that reads only those (`maskFields`). */
export type SomeLayoutFields = { readonly [F in LayoutField]?: Int32Array };

/** "Query i may attend key j", i and j being positions of one row. */
export type MaskExpr =
  | { readonly kind: "all" }
  | { readonly kind: "none" }
  /** j <= i */
  | { readonly kind: "causal" }
  /** doc[i] == doc[j] and doc[i] >= 0 */
  | { readonly kind: "sameDocument" }
  /** span[i] == span[j] >= 0 and both positions have this modality */
  | { readonly kind: "sameSpan"; readonly modality: number }
  /** j < n: a fixed prefix, the same for every row */
  | { readonly kind: "prefix"; readonly n: number }
  /** prefix[j] > 0: key j is in its document's prefix (per row, per document: layout data) */
  | { readonly kind: "inPrefix" }
  /** |i - j| < w */
  | { readonly kind: "window"; readonly w: number }
  | { readonly kind: "and"; readonly a: MaskExpr; readonly b: MaskExpr }
  | { readonly kind: "or"; readonly a: MaskExpr; readonly b: MaskExpr }
  | { readonly kind: "not"; readonly a: MaskExpr };

export type MaskKind = MaskExpr["kind"];
export type MaskOf<K extends MaskKind> = Extract<MaskExpr, { kind: K }>;

/** One rule per mask kind; `sub` applies the same table to a sub-expression. */
export type MaskRules<R> = {
  readonly [K in MaskKind]: (e: MaskOf<K>, sub: (e: MaskExpr) => R) => R;
};

/** Folds `expr` bottom-up with an exhaustive rule table (a new kind is a type error in every table). */
export function foldMask<R>(expr: MaskExpr, rules: MaskRules<R>): R {
  const sub = (e: MaskExpr): R => (rules[e.kind] as (e: MaskExpr, s: typeof sub) => R)(e, sub);
  return sub(expr);
}

/** The name of a modality number (`modality 7` for one outside `MODALITY`). */
export function modalityName(modality: number): string {
  const hit = Object.entries(MODALITY).find(([, v]) => v === modality);
  return hit ? hit[0] : `modality ${modality}`;
}

// ---------------------------------------------------------------------------------------------
// element-wise evaluation

/** A compiled rule: q and k are flat offsets (b * T + i), i and j the positions in the row. */
type PairTest = (f: SomeLayoutFields, q: number, k: number, i: number, j: number) => boolean;

const PAIR_TESTS: MaskRules<PairTest> = {
  all: () => () => true,
  none: () => () => false,
  causal: () => (_f, _q, _k, i, j) => j <= i,
  // Fields are checked present by the callers (checkLayoutFields over maskFields).
  sameDocument: () => (f, q, k) => f.doc![q]! >= 0 && f.doc![q] === f.doc![k],
  sameSpan: ({ modality }) => (f, q, k) =>
    f.span![q]! >= 0 && f.span![q] === f.span![k] && f.modality![q] === modality &&
    f.modality![k] === modality,
  prefix: ({ n }) => (_f, _q, _k, _i, j) => j < n,
  inPrefix: () => (f, _q, k) => f.prefix![k]! > 0,
  window: ({ w }) => (_f, _q, _k, i, j) => Math.abs(i - j) < w,
  and: (e, sub) => {
    const [a, b] = [sub(e.a), sub(e.b)];
    return (f, q, k, i, j) => a(f, q, k, i, j) && b(f, q, k, i, j);
  },
  or: (e, sub) => {
    const [a, b] = [sub(e.a), sub(e.b)];
    return (f, q, k, i, j) => a(f, q, k, i, j) || b(f, q, k, i, j);
  },
  not: (e, sub) => {
    const a = sub(e.a);
    return (f, q, k, i, j) => !a(f, q, k, i, j);
  },
};

/** Whether query i of row b may attend key j (fields: at least those the rule reads). */
export function maskAt(
  expr: MaskExpr,
  fields: SomeLayoutFields,
  T: number,
  b: number,
  i: number,
  j: number,
): boolean {
  return foldMask(expr, PAIR_TESTS)(fields, b * T + i, b * T + j, i, j);
}

/** The dense mask, 1 = may attend: Uint8Array [B, T, T] (batch, query, key). */
export function denseMask(expr: MaskExpr, fields: SomeLayoutFields, B: number, T: number): Uint8Array {
  checkLayoutFields(fields, B * T, maskFields(expr));
  const test = foldMask(expr, PAIR_TESTS);
  const out = new Uint8Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) out[(b * T + i) * T + j] = +test(fields, b * T + i, b * T + j, i, j);
    }
  }
  return out;
}

/** The layout fields a rule reads, in `ALL_LAYOUT_FIELDS` order (positions i, j are not fields). */
export function maskFields(expr: MaskExpr): LayoutField[] {
  const read = foldMask<Set<LayoutField>>(expr, {
    all: () => new Set(),
    none: () => new Set(),
    causal: () => new Set(),
    sameDocument: () => new Set(["doc"]),
    sameSpan: () => new Set(["span", "modality"]),
    prefix: () => new Set(),
    inPrefix: () => new Set(["prefix"]),
    window: () => new Set(),
    and: (e, sub) => new Set([...sub(e.a), ...sub(e.b)]),
    or: (e, sub) => new Set([...sub(e.a), ...sub(e.b)]),
    not: (e, sub) => sub(e.a),
  });
  return ALL_LAYOUT_FIELDS.filter((f) => read.has(f));
}

/** A one-line formula: `sameDocument & (causal | sameSpan(image))`. */
export function describeMask(expr: MaskExpr): string {
  const wrap = (parent: MaskKind, child: MaskExpr, text: string) =>
    (child.kind === "and" || child.kind === "or") && child.kind !== parent ? `(${text})` : text;
  return foldMask<string>(expr, {
    all: () => "all",
    none: () => "none",
    causal: () => "causal",
    sameDocument: () => "sameDocument",
    sameSpan: ({ modality }) => `sameSpan(${modalityName(modality)})`,
    prefix: ({ n }) => `prefix(${n})`,
    inPrefix: () => "inPrefix",
    window: ({ w }) => `window(${w})`,
    and: (e, sub) => `${wrap("and", e.a, sub(e.a))} & ${wrap("and", e.b, sub(e.b))}`,
    or: (e, sub) => `${wrap("or", e.a, sub(e.a))} | ${wrap("or", e.b, sub(e.b))}`,
    not: (e, sub) => (e.a.kind === "and" || e.a.kind === "or" ? `!(${sub(e.a)})` : `!${sub(e.a)}`),
  });
}

/** Throws unless each of `needed` (default: the standard fields) has B * T = `length` elements. */
export function checkLayoutFields(
  fields: SomeLayoutFields,
  length: number,
  needed: readonly LayoutField[] = LAYOUT_FIELDS,
): void {
  for (const f of needed) {
    const got = fields[f]?.length;
    if (got !== length) {
      throw new Error(`layout field "${f}" has ${got ?? "no"} elements, expected B * T = ${length}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tile classification, for skipping work in flash attention

/** "never": false for every (query, key) pair of the tile; "always": true for every pair. */
export type TileClass = "never" | "always" | "maybe";

/**
 * A tile's positions [first, last] of one row, and each field's min and max over them (for the
 * fields given; a rule reading a field without a range is an error).
 */
export interface FieldRanges {
  readonly first: number;
  readonly last: number;
  readonly min: Readonly<Partial<Record<LayoutField, number>>>;
  readonly max: Readonly<Partial<Record<LayoutField, number>>>;
}

/** The ranges of positions [first, last] (inclusive) of row b, for every field `fields` has. */
export function fieldRanges(
  fields: SomeLayoutFields,
  T: number,
  b: number,
  first: number,
  last: number,
): FieldRanges {
  if (!(0 <= first && first <= last && last < T)) {
    throw new Error(`fieldRanges: [${first}, ${last}] is not a non-empty range inside 0..${T - 1}`);
  }
  const min: Partial<Record<LayoutField, number>> = {};
  const max: Partial<Record<LayoutField, number>> = {};
  for (const f of ALL_LAYOUT_FIELDS) {
    const values = fields[f];
    if (!values) continue;
    let [lo, hi] = [Infinity, -Infinity];
    for (let i = first; i <= last; i++) {
      const v = values[b * T + i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    [min[f], max[f]] = [lo, hi];
  }
  return { first, last, min, max };
}

const leaf = (never: boolean, always: boolean): TileClass => never ? "never" : always ? "always" : "maybe";

/**
 * Interval reasoning per leaf, combined three-valued. Sound by construction: "never" and "always"
 * only when every pair agrees; "maybe" when unsure. kernels/mask_wgsl.ts `tileClassWgsl` mirrors
 * every condition here; keep the two in step.
 */
function tileRules(q: FieldRanges, k: FieldRanges): MaskRules<TileClass> {
  const range = (r: FieldRanges, f: LayoutField) => {
    const [lo, hi] = [r.min[f], r.max[f]];
    if (lo === undefined || hi === undefined) {
      throw new Error(`classifyTile: the rule reads ${f}, which has no range`);
    }
    return [lo, hi] as const;
  };
  return {
    all: () => "always",
    none: () => "never",
    causal: () => leaf(k.first > q.last, k.last <= q.first),
    sameDocument: () => {
      const [[q0, q1], [k0, k1]] = [range(q, "doc"), range(k, "doc")];
      return leaf(q1 < 0 || k1 < 0 || q1 < k0 || k1 < q0, q0 === q1 && k0 === k1 && q0 === k0 && q0 >= 0);
    },
    sameSpan: ({ modality: m }) => {
      const [[q0, q1], [k0, k1]] = [range(q, "span"), range(k, "span")];
      const [[qm0, qm1], [km0, km1]] = [range(q, "modality"), range(k, "modality")];
      const outside = m < qm0 || m > qm1 || m < km0 || m > km1;
      const only = qm0 === m && qm1 === m && km0 === m && km1 === m;
      return leaf(
        q1 < 0 || k1 < 0 || q1 < k0 || k1 < q0 || outside,
        q0 === q1 && k0 === k1 && q0 === k0 && q0 >= 0 && only,
      );
    },
    prefix: ({ n }) => leaf(k.first >= n, k.last < n),
    inPrefix: () => {
      const [lo, hi] = range(k, "prefix");
      return leaf(hi <= 0, lo > 0);
    },
    window: ({ w }) =>
      leaf(
        Math.max(k.first - q.last, q.first - k.last, 0) >= w, // the closest pair is too far
        Math.max(q.last - k.first, k.last - q.first) < w, // the farthest pair is near enough
      ),
    and: (e, sub) => {
      const [a, b] = [sub(e.a), sub(e.b)];
      return a === "never" || b === "never" ? "never" : a === "always" && b === "always" ? "always" : "maybe";
    },
    or: (e, sub) => {
      const [a, b] = [sub(e.a), sub(e.b)];
      return a === "always" || b === "always" ? "always" : a === "never" && b === "never" ? "never" : "maybe";
    },
    not: (e, sub) => {
      const a = sub(e.a);
      return a === "never" ? "always" : a === "always" ? "never" : "maybe";
    },
  };
}

/** Classifies the tile (queries q) x (keys k) of one row. */
export function classifyTile(expr: MaskExpr, q: FieldRanges, k: FieldRanges): TileClass {
  return foldMask(expr, tileRules(q, k));
}

export interface TileStats {
  /** B * ceil(T / blockQ) * ceil(T / blockK) */
  readonly tiles: number;
  /** classified "never": no work at all */
  readonly skipped: number;
  /** classified "always": attention without reading the mask */
  readonly full: number;
  /** classified "maybe": the mask is evaluated per element */
  readonly partial: number;
}

/** How a flash-attention pass with blockQ x blockK tiles would treat this batch. */
export function tileStats(
  expr: MaskExpr,
  fields: SomeLayoutFields,
  B: number,
  T: number,
  blockQ: number,
  blockK: number,
): TileStats {
  checkLayoutFields(fields, B * T, maskFields(expr));
  const counts = { never: 0, always: 0, maybe: 0 };
  const tilesOf = (b: number, block: number) =>
    Array.from(
      { length: Math.ceil(T / block) },
      (_, t) => fieldRanges(fields, T, b, t * block, Math.min((t + 1) * block, T) - 1),
    );
  for (let b = 0; b < B; b++) {
    const keys = tilesOf(b, blockK);
    for (const q of tilesOf(b, blockQ)) for (const k of keys) counts[classifyTile(expr, q, k)]++;
  }
  const tiles = counts.never + counts.always + counts.maybe;
  return { tiles, skipped: counts.never, full: counts.always, partial: counts.maybe };
}
