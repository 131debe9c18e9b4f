/**
 * WGSL kernel generators. They never see the IR: each takes WGSL builders for its loads and stores
 * (ElementwiseIO, MatmulIO, ScatterIO, AttentionIO) and returns a `Kernel`, plain data for the plan.
 */
export * from "./kernel.ts";
export {
  ELEMENTWISE_WORKGROUP,
  type ElementwiseIO,
  elementwiseKernel,
  type KernelMeta,
} from "./elementwise.ts";
export { reduceKernel } from "./reduce.ts";
export { scatterAddKernel, type ScatterIO } from "./scatter.ts";
export * from "./matmul.ts";
export * from "./conv.ts";
export { cachedVariant, defaultCachePath, shapeKey, tuneMatmul } from "./autotune.ts";
export * from "./flash_attention.ts";
export { maskPredicateWgsl, TILE_CLASS_CODE, tileClassWgsl } from "./mask_wgsl.ts";
export * from "./optimizer.ts";
export { AVERAGE_BUFFER, AVERAGE_SCALAR, movingAverageKernel } from "./moving_average.ts";
export { libraryFor, literal, loadWord, scalarType, storeWord } from "./wgsl.ts";
