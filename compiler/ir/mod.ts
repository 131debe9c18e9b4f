/**
 * The graph IR: one immutable, hash-consed node type, the primitive ops with their traits and
 * typed arguments, and shape/dtype inference. Everything else in the compiler reads this.
 */
export * from "./dtype.ts";
export * from "./errors.ts";
export * from "./node.ts";
export * from "./ops.ts";
export * from "./conv.ts";
export { SHAPE_RULES } from "./shape_rules.ts";
export * from "./mask.ts";
export * from "./position.ts";
