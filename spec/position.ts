/**
 * Per-position rules in a spec: which positions of a [B, T] batch a loss counts, written against
 * the sequence layout (and the token ids), evaluated in the graph per batch.
 *
 * @example Transfusion's LM targets: position i predicts token i + 1, so it counts where the NEXT
 * position is text, and not where its own token is BOI (the next positions are patches):
 * ```ts
 * const lmTargets = isText().next().and(isToken(BOI).not());
 * const weights = positionWeights(lmTargets, layoutOf(x), x.tokens); // f32 [B, T], 1 or 0
 * ```
 * With `buildLayout`'s BOI/EOI markers the last patch of an image counts (it predicts EOI, a text
 * position), and so does the last position of a packed document (it predicts the next document's
 * first token); add `.and(isText())` or a document rule if those should not count.
 */
import { describePosition, foldPosition, type PositionExpr } from "../compiler/ir/position.ts";
import { MODALITY, type ModalityName } from "../compiler/ir/mask.ts";
import { full } from "./functions.ts";
import { type Layout, layoutShape } from "./layout.ts";
import { fail, type Tensor } from "./tensor.ts";

export class Position {
  constructor(readonly expr: PositionExpr) {}
  and(other: Position): Position {
    return new Position({ kind: "and", a: this.expr, b: other.expr });
  }
  or(other: Position): Position {
    return new Position({ kind: "or", a: this.expr, b: other.expr });
  }
  not(): Position {
    return new Position({ kind: "not", a: this.expr });
  }
  /** This rule evaluated at position i + by (false where that is off the row). */
  shift(by: number): Position {
    if (!Number.isInteger(by)) fail("Position.shift", `by must be an integer, got ${by}`);
    return by === 0 ? this : new Position({ kind: "shift", by, a: this.expr });
  }
  /** This rule at the next position (false at the last position of a row). */
  next(): Position {
    return this.shift(1);
  }
  /** This rule at the previous position (false at the first position of a row). */
  prev(): Position {
    return this.shift(-1);
  }
  toString(): string {
    return describePosition(this.expr);
  }
}

/** The position holds this modality (padding holds none). */
export function isModality(modality: ModalityName): Position {
  const m = MODALITY[modality] as number | undefined;
  if (m === undefined) {
    fail("isModality", `unknown modality "${modality}"; known: ${Object.keys(MODALITY).join(", ")}`);
  }
  return new Position({ kind: "modality", modality: m });
}
/** A text position (BOI and EOI included). */
export const isText = (): Position => isModality("text");
/** An image patch. */
export const isImage = (): Position => isModality("image");
/** Not padding (doc >= 0). */
export const isValid = (): Position => new Position({ kind: "valid" });
/** The position's token id is `id` (reads the token ids given to `positionWeights`). */
export function isToken(id: number): Position {
  if (!Number.isInteger(id)) fail("isToken", `the token id must be an integer, got ${id}`);
  return new Position({ kind: "token", id });
}

/** bool [B, T]: where the rule holds. `tokens` (i32 [B, T]) is needed by `isToken`. */
export function positionMask(rule: Position, layout: Layout, tokens?: Tensor<"i32", 2>): Tensor<"bool", 2> {
  const [B, T] = layoutShape(layout);
  if (tokens && (tokens.dtype !== "i32" || tokens.shape[0] !== B || tokens.shape[1] !== T)) {
    fail("positionMask", `tokens must be i32 [${B}, ${T}] like the layout, got ${tokens}`);
  }
  return foldPosition<Tensor<"bool", 2>>(rule.expr, {
    modality: ({ modality }) => layout.modality.eq(modality),
    valid: () => layout.doc.ge(0),
    token: ({ id }) => {
      if (!tokens) fail("positionMask", `the rule ${rule} reads token ids; pass the tokens tensor`);
      return tokens.eq(id);
    },
    // Value at i is the inner rule at i + by: slide along the row, false where it leaves the row.
    shift: ({ by, a }, sub) => {
      if (Math.abs(by) >= T) return full([B, T], 0, "bool");
      const inner = sub(a);
      return by > 0 ? inner.slice(1, by).pad(1, 0, by, 0) : inner.slice(1, 0, T + by).pad(1, -by, 0, 0);
    },
    and: (e, sub) => sub(e.a).and(sub(e.b)),
    or: (e, sub) => sub(e.a).or(sub(e.b)),
    not: (e, sub) => sub(e.a).not(),
  });
}

/** f32 [B, T]: 1 where the rule holds, else 0 (loss weights). */
export function positionWeights(rule: Position, layout: Layout, tokens?: Tensor<"i32", 2>): Tensor<"f32", 2> {
  return positionMask(rule, layout, tokens).cast("f32");
}
