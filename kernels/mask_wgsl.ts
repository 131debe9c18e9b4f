/**
 * WGSL for attention-mask rules (compiler/ir/mask.ts): the per-element predicate, and the tile
 * classifier that lets a flash-attention kernel skip tiles or drop the mask on them. Both return one
 * WGSL expression built from the caller's expressions for positions and fields, so a kernel decides
 * where layout values live (registers, shared memory, a load). Pass cheap expressions (a `let` name):
 * they may appear several times.
 */
import { foldMask, type LayoutField, type MaskExpr, type MaskRules } from "../compiler/ir/mask.ts";
import { literal } from "./wgsl.ts";

/** One position: its index in the row (i32 or u32) and an i32 expression per layout field. */
export interface PositionWgsl {
  readonly index: string;
  readonly field: (f: LayoutField) => string;
}

/** A tile of one row: positions [first, last] (i32 or u32), and i32 min/max of each field over it. */
export interface TileRangesWgsl {
  readonly first: string;
  readonly last: string;
  readonly min: (f: LayoutField) => string;
  readonly max: (f: LayoutField) => string;
}

/** `tileClassWgsl`'s values. */
export const TILE_CLASS_CODE = { never: 0, always: 1, maybe: 2 } as const;

const int = (n: number) => literal(n, "i32");

/** A WGSL bool expression: query `q` may attend key `k`. */
export function maskPredicateWgsl(expr: MaskExpr, q: PositionWgsl, k: PositionWgsl): string {
  const [i, j] = [`i32(${q.index})`, `i32(${k.index})`];
  return foldMask<string>(expr, {
    all: () => "true",
    none: () => "false",
    causal: () => `(${j} <= ${i})`,
    sameDocument: () => `(${q.field("doc")} >= ${int(0)} && ${q.field("doc")} == ${k.field("doc")})`,
    sameSpan: ({ modality }) =>
      `(${q.field("span")} >= ${int(0)} && ${q.field("span")} == ${k.field("span")} && ` +
      `${q.field("modality")} == ${int(modality)} && ${k.field("modality")} == ${int(modality)})`,
    prefix: ({ n }) => `(${j} < ${int(n)})`,
    inPrefix: () => `(${k.field("prefix")} > ${int(0)})`,
    window: ({ w }) => `(abs(${i} - ${j}) < ${int(w)})`,
    and: (e, sub) => `(${sub(e.a)} && ${sub(e.b)})`,
    or: (e, sub) => `(${sub(e.a)} || ${sub(e.b)})`,
    not: (e, sub) => `(!${sub(e.a)})`,
  });
}

/**
 * A WGSL u32 expression: 0 = never, 1 = always, 2 = maybe (`TILE_CLASS_CODE`), the same answer as
 * `classifyTile` for the same ranges. Inside, a class is two bits, "may be true" (2) and "is always
 * true" (1): never 0, maybe 2, always 3, so `and` is `&`, `or` is `|`, and each sub-expression is
 * written once (no blow-up with depth).
 */
export function tileClassWgsl(expr: MaskExpr, q: TileRangesWgsl, k: TileRangesWgsl): string {
  const bits = foldMask(expr, tileBitRules(q, k));
  // A 2-bit lookup table indexed by the class bits: 0 -> 0, 1 (unreachable) -> 2, 2 -> 2, 3 -> 1.
  return `((0x68u >> (${bits} * 2u)) & 3u)`;
}

/** The leaf class from its conditions, as classifyTile's `leaf`: never wins, then always. */
const leaf = (never: string, always: string) => `select(select(2u, 3u, ${always}), 0u, ${never})`;

function tileBitRules(q: TileRangesWgsl, k: TileRangesWgsl): MaskRules<string> {
  const [qf, ql, kf, kl] = [`i32(${q.first})`, `i32(${q.last})`, `i32(${k.first})`, `i32(${k.last})`];
  const zero = int(0);
  /** never / always of "field equal and >= 0 on both sides" (sameDocument, and sameSpan's spans). */
  const sameValue = (f: LayoutField) => {
    const [q0, q1, k0, k1] = [q.min(f), q.max(f), k.min(f), k.max(f)];
    return {
      never: `${q1} < ${zero} || ${k1} < ${zero} || ${q1} < ${k0} || ${k1} < ${q0}`,
      always: `${q0} == ${q1} && ${k0} == ${k1} && ${q0} == ${k0} && ${q0} >= ${zero}`,
    };
  };
  return {
    all: () => "3u",
    none: () => "0u",
    causal: () => leaf(`${kf} > ${ql}`, `${kl} <= ${qf}`),
    sameDocument: () => {
      const doc = sameValue("doc");
      return leaf(`(${doc.never})`, `(${doc.always})`);
    },
    sameSpan: ({ modality }) => {
      const span = sameValue("span");
      const m = int(modality);
      const [qm0, qm1, km0, km1] = [
        q.min("modality"),
        q.max("modality"),
        k.min("modality"),
        k.max("modality"),
      ];
      const outside = `${m} < ${qm0} || ${m} > ${qm1} || ${m} < ${km0} || ${m} > ${km1}`;
      const only = `${qm0} == ${m} && ${qm1} == ${m} && ${km0} == ${m} && ${km1} == ${m}`;
      return leaf(`(${span.never} || ${outside})`, `(${span.always} && ${only})`);
    },
    prefix: ({ n }) => leaf(`${kf} >= ${int(n)}`, `${kl} < ${int(n)}`),
    inPrefix: () => leaf(`${k.max("prefix")} <= ${zero}`, `${k.min("prefix")} > ${zero}`),
    window: ({ w }) =>
      leaf(
        `max(max(${kf} - ${ql}, ${qf} - ${kl}), ${zero}) >= ${int(w)}`,
        `max(${ql} - ${kf}, ${kl} - ${qf}) < ${int(w)}`,
      ),
    and: (e, sub) => `(${sub(e.a)} & ${sub(e.b)})`,
    or: (e, sub) => `(${sub(e.a)} | ${sub(e.b)})`,
    // swaps never (0) and always (3), keeps maybe (2): table 0 -> 3, 1 -> 2, 2 -> 2, 3 -> 0
    not: (e, sub) => `((0x2bu >> (${sub(e.a)} * 2u)) & 3u)`,
  };
}
