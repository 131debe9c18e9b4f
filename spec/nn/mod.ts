/** Composite layers written in the DSL from primitives. */
export * from "./linear.ts";
