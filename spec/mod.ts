/**
 * The spec DSL: typed tensors, parameters and layers, inputs, and `model()`. A spec file imports
 * from here and default-exports a model.
 *
 * @example
 * ```ts
 * import { crossEntropy, gelu, input, linear, model } from "../spec/mod.ts";
 * export default model({
 *   name: "mlp",
 *   config: { dim: 784, hidden: 256, classes: 10 },
 *   params: (c) => ({ l1: linear(c.dim, c.hidden), l2: linear(c.hidden, c.classes) }),
 *   inputs: (c) => ({ x: input("f32", ["batch", c.dim]), y: input("i32", ["batch"]) }),
 *   loss: (p, { x, y }) => crossEntropy(p.l2(gelu(p.l1(x))), y),
 * });
 * ```
 */
export { Tensor } from "./tensor.ts";
export type { Dec, Inc, MaxRank } from "./rank.ts";
export * from "./functions.ts";
export {
  type LiteralDType,
  type LiteralRank,
  MAX_LITERAL_ELEMENTS,
  type NestedValues,
  tensor,
} from "./literal.ts";
export { rand, randn } from "./random.ts";
export {
  constant,
  type Init,
  type Materialized,
  module,
  type ModuleDecl,
  normal,
  ones,
  param,
  type ParamDecl,
  type ParamEntry,
  type ParamTree,
  scaledNormal,
  uniform,
  zeros,
} from "./params.ts";
export {
  type AnyModel,
  DEFAULT_F16_LOSS_SCALE,
  input,
  type InputDecl,
  type Inputs,
  isModel,
  lossScaleOf,
  type Model,
  model,
  type Precision,
  type Scalar,
  trace,
  type TracedModel,
  type TraceOptions,
  type TrainingDefaults,
} from "./model.ts";
export { resolveConfig } from "./config.ts";
export type { Batch, DataSource } from "./data.ts";
export * from "./nn/mod.ts";
export * from "./layout.ts";
export * from "./mask.ts";
export { maskSource, type PrintLayout, printMask, type PrintOptions } from "./mask_print.ts";
export * from "./position.ts";
export * from "./transfusion/mod.ts";
