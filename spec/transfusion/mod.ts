/**
 * Transfusion: one transformer over text tokens and image patches (next-token prediction for text,
 * diffusion for images). `transfusion(options)` builds the model; the rest is shared with the data
 * pipeline and the sampler (schedules, config, the LM target rule, sequence assembly).
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
export { attendOptions, backbone, transfusionMask } from "./backbone.ts";
export { noiseImages, perImageMse } from "./diffusion.ts";
export { patchify, placement, unpatchify } from "./patches.ts";
export * from "./sequence.ts";
export * from "./rows.ts";
export { type RowImageView, type RowView, rowView } from "./row_view.ts";
