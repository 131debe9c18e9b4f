/**
 * The replaceable pieces of `transfusion()`: what each one computes (its forward signature), the
 * default of each, and the loss parts a `totalLoss` hook sees. A piece is a `module` (spec/params.ts):
 * its parameters land in the model's tree under the piece's slot, with the piece's own names inside
 * (a custom block's `gate.w` in layer 2 is `backbone.blocks.2.gate.w` in plans and checkpoints).
 *
 *   slot               piece                                   forward
 *   embed              pieces.embed(c)                         tokens i32 [B, T] -> [B, T, D]
 *   backbone.blocks.i  pieces.block(c, i)                      x [B, T, D], attend -> [B, T, D]
 *   encoder, decoder   pieces.codec(c)                         Encode / Decode (encoder.ts)
 *   head               pieces.lmHead(c)                        h [B, T, D] -> logits [B, T, vocab]
 *   (no params)        pieces.imageLoss(pred, target)          [B, N, C, H, W] x 2 -> per image [B, N]
 *   (no params)        pieces.totalLoss(parts)                 LossParts -> the loss (and metrics)
 */
import type { AttentionOptions } from "../nn/attention.ts";
import { embedding, linearNoBias } from "../nn/mod.ts";
import type { Scalar } from "../model.ts";
import type { ModuleDecl } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import { block as defaultBlock } from "./backbone.ts";
import type { TransfusionConfig } from "./config.ts";
import { type Decode, type Encode, patchDecoder, patchEncoder } from "./encoder.ts";
import { imageMse } from "./diffusion.ts";

type T2 = Tensor<"f32", 2>;
type T3 = Tensor<"f32", 3>;
type T5 = Tensor<"f32", 5>;

/**
 * A module whose forward function is F, with any parameter tree: seen from the model, a piece's
 * parameter names are its own business (they only show up as paths).
 */
export type Piece<F extends (...args: never[]) => unknown> = ModuleDecl<Record<never, never>, F>;

/** tokens i32 [B, T] -> vectors [B, T, D]. */
export type Embed = (tokens: Tensor<"i32", 2>) => T3;
/**
 * One backbone layer, x [B, T, D] -> [B, T, D]. Pass `attend` unchanged to its attention call (once
 * per block): it carries the Transfusion mask, the rotary positions and, in the cached entries, the
 * KV-cache hook.
 */
export type Block = (x: T3, attend: AttentionOptions) => T3;
/** The backbone's normed hidden states h [B, T, D] -> logits [B, T, vocab]. */
export type LmHead = (h: T3) => T3;
/** Patch rows in and out of the transformer; the decoder is the patch output head. */
export interface Codec {
  readonly encoder: Piece<Encode>;
  readonly decoder: Piece<Decode>;
}
/** Predictions and targets [B, N, C, H, W] -> each image's loss [B, N] (absent slots are masked later). */
export type ImageLoss = (pred: T5, target: T5) => T2;

/** What a `totalLoss` hook sees: every part of the default loss, before it is summed. */
export interface LossParts {
  /** Mean next-token cross-entropy over the counted text positions. */
  readonly lm: Scalar;
  /** Each image's diffusion loss [B, N] (`imageLoss`, default the MSE over C, H, W). */
  readonly images: T2;
  /** 1 where the image slot holds an image, else 0 [B, N]. */
  readonly valid: T2;
  /** The weight of each image [B, N]: valid * image_weight with `loss.imageWeights: "input"`, else valid. */
  readonly weight: T2;
  /** The default diffusion loss: sum(images * weight) / max(sum(valid), 1). */
  readonly diffusion: Scalar;
  /** The timestep drawn per image [B, N]: the DDPM step in [0, T), or flow matching's t in [0, 1). */
  readonly t: T2;
  /** 1 for the images of image-first (captioning) rows [B, N]. */
  readonly imageFirst: T2;
  /** The logits [B, T, vocab] the LM loss was taken of (for an extra term such as a z-loss). */
  readonly logits: T3;
  /** The default total: textWeight * lm + lambda * diffusion. */
  readonly total: () => Scalar;
  readonly config: TransfusionConfig;
}

/** What a `totalLoss` hook returns: the loss, or the loss and named metrics (all scalars). */
export type HookResult = Tensor<"f32", number> | {
  readonly loss: Tensor<"f32", number>;
  readonly metrics?: Readonly<Record<string, Tensor<"f32", number>>>;
};

/** The pieces a user may replace; each is optional and defaults to the one of `defaultPieces`. */
export interface TransfusionPieces {
  readonly embed?: (c: TransfusionConfig) => Piece<Embed>;
  /** Layer `layer` of the backbone (0-based), so blocks may differ by depth. */
  readonly block?: (c: TransfusionConfig, layer: number) => Piece<Block>;
  readonly codec?: (c: TransfusionConfig) => Codec;
  readonly lmHead?: (c: TransfusionConfig) => Piece<LmHead>;
  readonly imageLoss?: ImageLoss;
  /**
   * The total loss from its parts; metrics it returns are logged beside "lm" and "diffusion". The
   * loss and metrics must be scalars (checked when traced: DSL arithmetic often types them rank
   * `number`, so no cast is needed).
   */
  readonly totalLoss?: (parts: LossParts) => HookResult;
}

/** Values per patch row: C * p * p. */
export const patchValues = (c: TransfusionConfig): number => c.image.channels * c.image.patch ** 2;

/** The pieces `transfusion()` uses where none is given, for a custom piece to reuse or wrap. */
export const defaultPieces = {
  embed: (c: TransfusionConfig): Piece<Embed> =>
    embedding(c.text.vocab, c.backbone.dim, { std: c.backbone.initStd }),
  block: (c: TransfusionConfig, _layer: number): Piece<Block> => defaultBlock(c.backbone),
  codec: (c: TransfusionConfig): Codec => ({
    encoder: patchEncoder(c.backbone, c.image, patchValues(c)),
    decoder: patchDecoder(c.backbone, c.image, patchValues(c)),
  }),
  lmHead: (c: TransfusionConfig): Piece<LmHead> =>
    linearNoBias(c.backbone.dim, c.text.vocab, { std: c.backbone.initStd }),
  imageLoss: imageMse as ImageLoss,
  totalLoss: (parts: LossParts): HookResult => parts.total(),
} as const satisfies Required<TransfusionPieces>;
