/** Composite layers written in the DSL from primitives. Every one documents its shapes. */
export * from "./activations.ts";
export * from "./attention.ts";
export * from "./embedding.ts";
export * from "./linear.ts";
export * from "./losses.ts";
export * from "./norm.ts";
export * from "./rope.ts";
export * from "./swiglu.ts";
export * from "./timestep.ts";
export * from "./flash_attention.ts";
export * from "./conv.ts";
