/**
 * The compiler: spec -> IR -> gradients -> kernel plan.
 *
 *   trace (spec/)  ->  grad (autodiff.ts)  ->  verify  ->  lowerEntry (lower/)  ->  Plan (plan.ts)
 *
 * `compile` is the driver; `interpret` is the reference oracle for every kernel and gradient.
 */
export * from "./ir/mod.ts";
export { compile, compileGraph, type CompileOptions, DEFAULT_OPTIMIZER } from "./compile.ts";
export { gatherInputs, rowsInputName, tableBufferName } from "./gather_inputs.ts";
export { grad, valueAndGrad, VJP, vjp } from "./autodiff.ts";
export { type Env, interpret, INTERPRETER, type Value } from "./interpreter.ts";
export { verify } from "./verify.ts";
export { printGraph } from "./print.ts";
export type * from "./plan.ts";
export { LOWERING } from "./lower/values.ts";
