import { node } from "../compiler/ir/mod.ts";
import { seedNode, tracing } from "./context.ts";
import { Tensor } from "./tensor.ts";

/**
 * Random tensors from the counter-based generator. Each call is its own stream; the executor feeds
 * the shared `seed` input (seed, step) so a step's draws are reproducible on every backend.
 */
export function randn<const S extends readonly number[]>(shape: S): Tensor<"f32", S["length"]> {
  const ctx = tracing("randn");
  return new Tensor(node("rand_normal", [seedNode(ctx)], { shape, stream: ctx.nextStream++ }));
}

export function rand<const S extends readonly number[]>(shape: S): Tensor<"f32", S["length"]> {
  const ctx = tracing("rand");
  return new Tensor(node("rand_uniform", [seedNode(ctx)], { shape, stream: ctx.nextStream++ }));
}
