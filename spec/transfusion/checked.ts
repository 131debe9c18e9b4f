/**
 * Shape checks on what a user's piece returns, so a wrong size is reported at the piece that made it
 * ("pieces.block (layer 1) returned f32[2, 41, 128], expected f32[2, 41, 64]") rather than in the
 * op that next reads it. The default pieces are used unwrapped.
 */
import { fmtShape, SpecError } from "../../compiler/ir/mod.ts";
import { module } from "../params.ts";
import { Tensor } from "../tensor.ts";
import type { TransfusionConfig } from "./config.ts";
import {
  type Block,
  type Codec,
  defaultPieces,
  patchValues,
  type Piece,
  type TransfusionPieces,
} from "./pieces.ts";

/** Throws unless `t` is an f32 tensor of `shape`. */
export function checkShape(
  piece: string,
  what: string,
  t: unknown,
  shape: readonly number[],
  site?: string,
): void {
  if (!(t instanceof Tensor)) {
    throw new SpecError(piece, `${what} is ${describe(t)}, expected a tensor f32${fmtShape(shape)}`, site);
  }
  const same = t.dtype === "f32" && t.shape.length === shape.length &&
    t.shape.every((d, i) => d === shape[i]);
  if (!same) {
    throw new SpecError(
      piece,
      `${what} is ${t.dtype}${fmtShape(t.shape)}, expected f32${fmtShape(shape)}`,
      t.node.site ?? site,
    );
  }
}

/**
 * The piece with the same parameter tree, its forward's result checked by `check` (which throws).
 * `site`: the user's `transfusion()` call, for errors no node of theirs locates.
 */
export function checkedPiece<F extends (...args: never[]) => unknown>(
  piece: Piece<F>,
  name: string,
  check: (args: Parameters<F>, result: ReturnType<F>) => void,
  site: string | undefined,
): Piece<F> {
  if (!isModule(piece)) {
    throw new SpecError(
      name,
      `must return a module (spec/params.ts \`module\`), got ${describe(piece)}`,
      site,
    );
  }
  return module(piece.params, (p) => {
    const forward = piece.apply(p as never);
    if (typeof forward !== "function") {
      throw new SpecError(
        name,
        `the module's apply must return its forward function, got ${describe(forward)}`,
        site,
      );
    }
    return ((...args: Parameters<F>) => {
      const result = forward(...args) as ReturnType<F>;
      check(args, result);
      return result;
    }) as unknown as F;
  });
}

function isModule(x: unknown): boolean {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "module";
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return `${x.dtype}${fmtShape(x.shape)}`;
  if (x === null || x === undefined) return String(x);
  if (typeof x === "object") return `an object with keys ${Object.keys(x).join(", ") || "(none)"}`;
  return `a ${typeof x}`;
}

/** The modules in each slot for config `c`: the user's pieces (checked) where given, else the defaults. */
export function slotModules(c: TransfusionConfig, pieces: TransfusionPieces, site: string | undefined) {
  const [dim, vocab, values] = [c.backbone.dim, c.text.vocab, patchValues(c)];
  const codec = pieces.codec ? checkedCodec(pieces.codec(c), dim, values, site) : defaultPieces.codec(c);
  return {
    embed: pieces.embed
      ? checkedPiece(
        pieces.embed(c),
        "pieces.embed",
        ([tokens], out) => checkShape("pieces.embed", "its result", out, [...tokens.shape, dim], site),
        site,
      )
      : defaultPieces.embed(c),
    block: (layer: number): Piece<Block> => {
      if (!pieces.block) return defaultPieces.block(c, layer);
      const name = `pieces.block (layer ${layer})`;
      return checkedPiece(
        pieces.block(c, layer),
        name,
        ([x], out) => checkShape(name, "its result", out, x.shape, site),
        site,
      );
    },
    encoder: codec.encoder,
    decoder: codec.decoder,
    lmHead: pieces.lmHead
      ? checkedPiece(
        pieces.lmHead(c),
        "pieces.lmHead",
        ([h], out) => checkShape("pieces.lmHead", "its result", out, [...h.shape.slice(0, -1), vocab], site),
        site,
      )
      : defaultPieces.lmHead(c),
  };
}

function checkedCodec(codec: Codec, dim: number, values: number, site: string | undefined): Codec {
  const rows = (t: { shape: readonly number[] }, width: number) => [...t.shape.slice(0, -1), width];
  return {
    encoder: checkedPiece(codec.encoder, "pieces.codec encoder", ([patches], out) => {
      checkShape("pieces.codec encoder", "its vectors", out?.vectors, rows(patches, dim), site);
      if (!Array.isArray(out.skips)) {
        throw new SpecError("pieces.codec encoder", `must return { vectors, skips: [] }`, site);
      }
    }, site),
    decoder: checkedPiece(
      codec.decoder,
      "pieces.codec decoder",
      ([h], out) => checkShape("pieces.codec decoder", "its result", out, rows(h, values), site),
      site,
    ),
  };
}
