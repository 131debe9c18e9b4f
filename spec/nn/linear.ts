import { module, normal, param, zeros } from "../params.ts";
import type { Tensor } from "../tensor.ts";

type Apply = <R extends number>(x: Tensor<"f32", R>) => Tensor<"f32", R>;

/** y = x W + b, W: [inDim, outDim] (normal, std 0.02 by default), b: [outDim]. */
export function linear(inDim: number, outDim: number, opts: { std?: number } = {}) {
  const std = opts.std ?? 0.02;
  return module(
    { w: param([inDim, outDim], normal(std)), b: param([outDim], zeros()) },
    (p): Apply => (x) => x.matmul(p.w).add(p.b) as Tensor<"f32", number> as never,
  );
}

/** y = x W without a bias (attention projections, LM heads). */
export function linearNoBias(inDim: number, outDim: number, opts: { std?: number } = {}) {
  const std = opts.std ?? 0.02;
  return module(
    { w: param([inDim, outDim], normal(std)) },
    (p): Apply => (x) => x.matmul(p.w) as Tensor<"f32", number> as never,
  );
}
