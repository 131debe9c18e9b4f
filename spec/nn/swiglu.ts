import { module } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import { silu } from "./activations.ts";
import { linearNoBias } from "./linear.ts";

type Apply = <R extends number>(x: Tensor<"f32", R>) => Tensor<"f32", R>;

/**
 * SwiGLU feed-forward (LLaMA): w2(silu(w1 x) * w3 x). x: [..., dim] -> [..., dim], hidden [..., hidden].
 * Params: w1.w, w3.w [dim, hidden] (w3 is the gate's linear branch), w2.w [hidden, dim]; no biases.
 * `outStd` sets w2's init separately (a residual projection is often scaled by 1/sqrt(2 * layers)).
 */
export function swiglu(dim: number, hidden: number, opts: { std?: number; outStd?: number } = {}) {
  const std = opts.std ?? 0.02;
  return module(
    {
      w1: linearNoBias(dim, hidden, { std }),
      w3: linearNoBias(dim, hidden, { std }),
      w2: linearNoBias(hidden, dim, { std: opts.outStd ?? std }),
    },
    (p): Apply => (x) => p.w2(silu(p.w1(x)).mul(p.w3(x)) as Tensor<"f32", number>) as never,
  );
}
