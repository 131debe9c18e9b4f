import type { FloatDType } from "../../compiler/ir/mod.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Softmax along `axis` (default: the last). The row max is subtracted first, so large logits do not
 * overflow; the shape is unchanged. A row that is all `-Infinity` gives NaN (max - max), which is why
 * `attention` masks with a large finite negative instead.
 */
export function softmax<D extends FloatDType, R extends number>(x: Tensor<D, R>, axis = -1): Tensor<D, R> {
  const shifted = x.sub(x.maxKeep(axis)) as Tensor<D, R>;
  const e = shifted.exp();
  return e.div(e.sumKeep(axis)) as Tensor<D, R>;
}

/** log(softmax(x)) along `axis`, computed as (x - max) - log(sum(exp(x - max))): no overflow, no log(0). */
export function logSoftmax<D extends FloatDType, R extends number>(x: Tensor<D, R>, axis = -1): Tensor<D, R> {
  const shifted = x.sub(x.maxKeep(axis)) as Tensor<D, R>;
  return shifted.sub(shifted.exp().sumKeep(axis).log()) as Tensor<D, R>;
}

/** GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). Shape unchanged. */
export function gelu<D extends FloatDType, R extends number>(x: Tensor<D, R>): Tensor<D, R> {
  const cdf = x.mul(Math.SQRT1_2).erf().add(1).mul(0.5) as Tensor<D, R>;
  return x.mul(cdf) as Tensor<D, R>;
}

/** GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh<D extends FloatDType, R extends number>(x: Tensor<D, R>): Tensor<D, R> {
  const inner = x.add(x.square().mul(x).mul(0.044715)).mul(Math.sqrt(2 / Math.PI)) as Tensor<D, R>;
  return x.mul(inner.tanh().add(1).mul(0.5)) as Tensor<D, R>;
}

/** SiLU (swish): x * sigmoid(x). Shape unchanged. */
export function silu<D extends FloatDType, R extends number>(x: Tensor<D, R>): Tensor<D, R> {
  return x.mul(x.sigmoid()) as Tensor<D, R>;
}
