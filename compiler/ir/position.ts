/**
 * Per-position rules over the sequence layout (which positions carry a loss, and of what kind), as
 * plain JSON like the mask rules in mask.ts, with their CPU evaluation as the oracle.
 */
import { LAYOUT_FIELDS, type LayoutField, type LayoutFields, modalityName } from "./mask.ts";

/** A predicate on position i of a row. */
export type PositionExpr =
  | { readonly kind: "modality"; readonly modality: number }
  /** The rule at position i + by; false when that is off the row. */
  | { readonly kind: "shift"; readonly by: number; readonly a: PositionExpr }
  /** tokens[i] == id: needs the token ids input. */
  | { readonly kind: "token"; readonly id: number }
  /** doc[i] >= 0, i.e. not padding */
  | { readonly kind: "valid" }
  | { readonly kind: "and"; readonly a: PositionExpr; readonly b: PositionExpr }
  | { readonly kind: "or"; readonly a: PositionExpr; readonly b: PositionExpr }
  | { readonly kind: "not"; readonly a: PositionExpr };

export type PositionKind = PositionExpr["kind"];
export type PositionOf<K extends PositionKind> = Extract<PositionExpr, { kind: K }>;

export type PositionRules<R> = {
  readonly [K in PositionKind]: (e: PositionOf<K>, sub: (e: PositionExpr) => R) => R;
};

/** Folds `expr` bottom-up with an exhaustive rule table. */
export function foldPosition<R>(expr: PositionExpr, rules: PositionRules<R>): R {
  const sub = (e: PositionExpr): R => (rules[e.kind] as (e: PositionExpr, s: typeof sub) => R)(e, sub);
  return sub(expr);
}

/** A compiled rule at position i of the row starting at flat offset `row`. */
type PositionTest = (
  f: LayoutFields,
  tokens: Int32Array | undefined,
  row: number,
  i: number,
  T: number,
) => boolean;

const POSITION_TESTS: PositionRules<PositionTest> = {
  modality: ({ modality }) => (f, _t, row, i) => f.modality[row + i] === modality,
  shift: ({ by, a }, sub) => {
    const inner = sub(a);
    return (f, t, row, i, T) => i + by >= 0 && i + by < T && inner(f, t, row, i + by, T);
  },
  token: ({ id }) => (_f, tokens, row, i) => {
    if (!tokens) throw new Error(`the position rule reads token ids (token ${id}), but none were given`);
    return tokens[row + i] === id;
  },
  valid: () => (f, _t, row, i) => f.doc[row + i]! >= 0,
  and: (e, sub) => {
    const [a, b] = [sub(e.a), sub(e.b)];
    return (f, t, row, i, T) => a(f, t, row, i, T) && b(f, t, row, i, T);
  },
  or: (e, sub) => {
    const [a, b] = [sub(e.a), sub(e.b)];
    return (f, t, row, i, T) => a(f, t, row, i, T) || b(f, t, row, i, T);
  },
  not: (e, sub) => {
    const a = sub(e.a);
    return (f, t, row, i, T) => !a(f, t, row, i, T);
  },
};

/** Whether the rule holds at position i of row b. `tokens` is i32 [B * T], needed by `token` rules. */
export function positionAt(
  expr: PositionExpr,
  fields: LayoutFields,
  tokens: Int32Array | undefined,
  T: number,
  b: number,
  i: number,
): boolean {
  return foldPosition(expr, POSITION_TESTS)(fields, tokens, b * T, i, T);
}

/** The rule at every position: Uint8Array [B, T], 1 where it holds. */
export function densePositions(
  expr: PositionExpr,
  fields: LayoutFields,
  tokens: Int32Array | undefined,
  B: number,
  T: number,
): Uint8Array {
  const test = foldPosition(expr, POSITION_TESTS);
  const out = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) out[b * T + i] = +test(fields, tokens, b * T, i, T);
  return out;
}

/** What a rule reads: layout fields (in `LAYOUT_FIELDS` order) and whether it needs token ids. */
export function positionReads(expr: PositionExpr): { fields: LayoutField[]; tokens: boolean } {
  const read = foldPosition<Set<LayoutField | "tokens">>(expr, {
    modality: () => new Set(["modality"]),
    shift: (e, sub) => sub(e.a),
    token: () => new Set(["tokens"]),
    valid: () => new Set(["doc"]),
    and: (e, sub) => new Set([...sub(e.a), ...sub(e.b)]),
    or: (e, sub) => new Set([...sub(e.a), ...sub(e.b)]),
    not: (e, sub) => sub(e.a),
  });
  return { fields: LAYOUT_FIELDS.filter((f) => read.has(f)), tokens: read.has("tokens") };
}

/** A one-line formula: `next(isText) & !isToken(1)`. */
export function describePosition(expr: PositionExpr): string {
  const wrap = (parent: PositionKind, child: PositionExpr, text: string) =>
    (child.kind === "and" || child.kind === "or") && child.kind !== parent ? `(${text})` : text;
  return foldPosition<string>(expr, {
    modality: ({ modality }) => {
      const name = modalityName(modality);
      return name.startsWith("modality") ? `is(${name})` : `is${name[0]!.toUpperCase()}${name.slice(1)}`;
    },
    shift: ({ by, a }, sub) =>
      by === 1 ? `next(${sub(a)})` : by === -1 ? `prev(${sub(a)})` : `shift(${by}, ${sub(a)})`,
    token: ({ id }) => `isToken(${id})`,
    valid: () => "isValid",
    and: (e, sub) => `${wrap("and", e.a, sub(e.a))} & ${wrap("and", e.b, sub(e.b))}`,
    or: (e, sub) => `${wrap("or", e.a, sub(e.a))} | ${wrap("or", e.b, sub(e.b))}`,
    not: (e, sub) => (e.a.kind === "and" || e.a.kind === "or" ? `!(${sub(e.a)})` : `!${sub(e.a)}`),
  });
}
