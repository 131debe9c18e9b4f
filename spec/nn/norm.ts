import { fmtShape } from "../../compiler/ir/mod.ts";
import { module, ones, param, zeros } from "../params.ts";
import { fail, type Tensor } from "../tensor.ts";

type Apply = <R extends number>(x: Tensor<"f32", R>) => Tensor<"f32", R>;

function checkLastDim(op: string, x: Tensor, dim: number) {
  if (x.rank === 0 || x.dim(-1) !== dim) {
    fail(op, `expects [..., ${dim}] (the normalized dim), got ${fmtShape(x.shape)}`);
  }
}

/**
 * RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * g. x: [..., dim] -> [..., dim].
 * Params: g [dim] (gain, ones).
 */
export function rmsnorm(dim: number, eps = 1e-6) {
  return module({ g: param([dim], ones()) }, (p): Apply => (x) => {
    checkLastDim("rmsnorm", x, dim);
    const inv = x.square().meanKeep(-1).add(eps).rsqrt(); // [..., 1]
    return x.mul(inv).mul(p.g) as Tensor<"f32", number> as never;
  });
}

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * g + b, with the biased variance.
 * x: [..., dim] -> [..., dim]. Params: g [dim] (gain, ones), b [dim] (bias, zeros).
 */
export function layernorm(dim: number, eps = 1e-5) {
  return module({ g: param([dim], ones()), b: param([dim], zeros()) }, (p): Apply => (x) => {
    checkLastDim("layernorm", x, dim);
    const centered = x.sub(x.meanKeep(-1)); // [..., dim]
    const inv = centered.square().meanKeep(-1).add(eps).rsqrt(); // [..., 1]
    return centered.mul(inv).mul(p.g).add(p.b) as Tensor<"f32", number> as never;
  });
}
