/**
 * The loss entry's total: the LM loss and the per-image diffusion losses, weighted per modality
 * (loss.textWeight, loss.lambda) and per image (the `image_weight` input with loss.imageWeights
 * "input"), then summed, or handed to the user's `totalLoss` hook.
 *
 *   L = textWeight * L_LM + lambda * sum_i(w_i * valid_i * L_i) / max(sum_i valid_i, 1)
 */
import { SpecError } from "../../compiler/ir/mod.ts";
import type { LossResult, Scalar } from "../model.ts";
import { Tensor } from "../tensor.ts";
import type { TransfusionConfig } from "./config.ts";
import { weightedImageMean } from "./diffusion.ts";
import { checkShape } from "./checked.ts";
import { defaultPieces, type LossParts, type TransfusionPieces } from "./pieces.ts";

type T2 = Tensor<"f32", 2>;
type T3 = Tensor<"f32", 3>;
type T5 = Tensor<"f32", 5>;

/** The tensors of one pass that the loss is made of. */
export interface LossTerms {
  readonly lm: Scalar;
  readonly logits: T3;
  /** Predictions and targets [B, N, C, H, W]. */
  readonly pred: T5;
  readonly target: T5;
  /** The timesteps drawn [B, N]. */
  readonly t: T2;
  readonly valid: T2;
  readonly imageFirst: T2;
  /** The `image_weight` input [B, N] (loss.imageWeights "input"), else absent. */
  readonly imageWeight?: T2 | undefined;
}

/** The loss entry's result: the total, with "lm" and "diffusion" (and the hook's metrics) as metrics. */
export function totalLoss(
  x: LossTerms,
  c: TransfusionConfig,
  pieces: TransfusionPieces,
  site?: string,
): LossResult {
  const imageLoss = pieces.imageLoss ?? defaultPieces.imageLoss;
  const images = imageLoss(x.pred, x.target); // [B, N]
  if (pieces.imageLoss) checkShape("pieces.imageLoss", "its result", images, x.valid.shape, site);
  const weight = x.imageWeight ? x.valid.mul(x.imageWeight) : x.valid;
  const diffusion = weightedImageMean(images, x.valid, weight);
  const metrics = { lm: x.lm, diffusion };
  const total = () => textTerm(x.lm, c).add(diffusion.mul(c.loss.lambda)) as Scalar;
  if (!pieces.totalLoss) return { loss: total(), metrics };
  const parts: LossParts = {
    lm: x.lm,
    images,
    valid: x.valid,
    weight,
    diffusion,
    t: x.t,
    imageFirst: x.imageFirst,
    logits: x.logits,
    total,
    config: c,
  };
  const result = pieces.totalLoss(parts);
  const [loss, extra] = result instanceof Tensor ? [result, {}] : [result?.loss, result?.metrics ?? {}];
  checkShape("pieces.totalLoss", "the loss it returns", loss, [], site);
  for (const [name, m] of Object.entries(extra)) {
    if (name in metrics) {
      throw new SpecError(
        "pieces.totalLoss",
        `metric "${name}" would hide the builder's own; rename it`,
        site,
      );
    }
    checkShape("pieces.totalLoss", `metric "${name}"`, m, [], site);
  }
  return { loss: loss as Scalar, metrics: { ...metrics, ...extra as Record<string, Scalar> } };
}

/** textWeight * lm; no multiply where the weight is absent or 1, so default plans stay as they were. */
function textTerm(lm: Scalar, c: TransfusionConfig): Scalar {
  const w = c.loss.textWeight;
  return w === undefined || w === 1 ? lm : lm.mul(w);
}
