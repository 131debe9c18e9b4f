/**
 * Transfusion: one transformer over text tokens and image patches (next-token prediction for text,
 * diffusion for images). `transfusion(options)` builds the model; the rest is shared with the data
 * pipeline and the sampler (schedules, config, the LM target rule, sequence assembly). Its pieces
 * (token embedding, backbone block, image codec, LM head, image loss, the loss total) are exported
 * with their defaults and replaced with `transfusion({ pieces: { block, codec, ... } })` (pieces.ts).
 *
 * @example
 * ```ts
 * import { transfusion } from "../spec/transfusion/mod.ts";
 * export default transfusion({ backbone: { dim: 64, depth: 2, heads: 4 }, image: { size: 16, patch: 2 } });
 * ```
 */
export { transfusion } from "./model.ts";
export { transfusionConfig, type TransfusionOptions } from "./options.ts";
export {
  type BackboneConfig,
  configSchema,
  DEFAULTS,
  type DiffusionConfig,
  type ImageConfig,
  type LossConfig,
  rowGeometry,
  type TextConfig,
  type TransfusionConfig,
} from "./config.ts";
export {
  COSINE_OFFSET,
  type DiffusionSchedule,
  diffusionSchedule,
  LINEAR_BETAS,
  MAX_BETA,
} from "./schedule.ts";
export { lmLoss, lmTargets } from "./lm.ts";
export { attendOptions, backbone, type BlockModule, transfusionMask } from "./backbone.ts";
export { imageMse, noiseImages, perImageMse, weightedImageMean } from "./diffusion.ts";
export { type Decode, type Encode, patchDecoder, patchEncoder, type Skip } from "./encoder.ts";
export {
  type Block,
  type Codec,
  defaultPieces,
  type Embed,
  type ImageLoss,
  type LmHead,
  type LossParts,
  patchValues,
  type Piece,
  type TransfusionPieces,
} from "./pieces.ts";
export { withImageWeights } from "./image_weights.ts";
export { patchify, placement, unpatchify } from "./patches.ts";
export * from "./sequence.ts";
export * from "./rows.ts";
export { type RowImageView, type RowView, rowView } from "./row_view.ts";
