import { type Node, node, SpecError, userSite } from "../compiler/ir/mod.ts";

/**
 * State that lives for one trace: the bindings of symbolic dimensions ("batch", "seq"), the RNG
 * stream counter (each random call gets its own stream) and the seed input that all of them share.
 */
export interface TraceContext {
  readonly dims: Readonly<Record<string, number>>;
  nextStream: number;
  seed: Node<"input"> | undefined;
}

let current: TraceContext | undefined;

export function withTrace<T>(dims: Record<string, number>, f: (ctx: TraceContext) => T): T {
  const saved = current;
  const ctx: TraceContext = { dims, nextStream: 0, seed: undefined };
  current = ctx;
  try {
    return f(ctx);
  } finally {
    current = saved;
  }
}

export function tracing(op: string): TraceContext {
  if (!current) {
    throw new SpecError(
      op,
      "can only be called while a model is traced (inside params/inputs/loss)",
      userSite(),
    );
  }
  return current;
}

/** The u32[2] (seed, offset) input that feeds every random op of the trace. */
export function seedNode(ctx: TraceContext): Node<"input"> {
  ctx.seed ??= node("input", [], { name: "seed", shape: [2], dtype: "u32" });
  return ctx.seed;
}
