import { fmtShape } from "../../compiler/ir/mod.ts";
import { iota } from "../functions.ts";
import { fail, type Tensor } from "../tensor.ts";
import { logSoftmax } from "./activations.ts";

export interface CrossEntropyOptions {
  /** bool, the labels' shape: true = leave this position out of the loss (padding, image tokens). */
  ignore?: Tensor<"bool", number>;
  /** Positions whose label equals this value are left out (e.g. -100, as in PyTorch). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy -log softmax(logits)[label] over the positions that are not ignored.
 * logits: f32 [..., C]; labels: int [...] (the logits' shape without C). Returns an f32 scalar.
 * If every position is ignored the loss is 0 (the count is clamped to 1), not NaN. A label outside
 * [0, C) that is not ignored picks no class and contributes 0 while still counting in the mean.
 */
export function crossEntropy(
  logits: Tensor<"f32", number>,
  labels: Tensor<"i32" | "u32", number>,
  opts: CrossEntropyOptions = {},
): Tensor<"f32", 0> {
  const lead = logits.shape.slice(0, -1);
  const sameLead = logits.rank >= 1 && labels.rank === lead.length &&
    labels.shape.every((d, i) => d === lead[i]);
  if (!sameLead) {
    fail(
      "crossEntropy",
      `expects logits [..., C] and labels [...], got ${fmtShape(logits.shape)} and ${fmtShape(labels.shape)}`,
    );
  }
  if (opts.ignore && fmtShape(opts.ignore.shape) !== fmtShape(labels.shape)) {
    fail(
      "crossEntropy",
      `the ignore mask ${fmtShape(opts.ignore.shape)} must match labels ${fmtShape(labels.shape)}`,
    );
  }
  const classes = logits.dim(-1);
  const n = lead.reduce((p, d) => p * d, 1);
  const logp = logSoftmax(logits.reshape([n, classes])); // [N, C]
  const label = labels.cast("i32").reshape([n]); // [N]
  const isLabel = iota([n, classes], 1, "i32").eq(label.unsqueeze(-1)).cast("f32"); // [N, C] one-hot
  const nll = logp.mul(isLabel).sum(-1).neg(); // [N]

  let keep: Tensor<"bool", number> | undefined;
  if (opts.ignore) keep = opts.ignore.reshape([n]).not();
  if (opts.ignoreIndex !== undefined) {
    const notIgnored = label.ne(opts.ignoreIndex);
    keep = keep ? keep.and(notIgnored) : notIgnored;
  }
  if (!keep) return nll.mean();
  const weight = keep.cast("f32"); // [N]
  return nll.mul(weight).sum().div(weight.sum().maximum(1));
}

/** Mean squared error over all elements; a and b have equal (or broadcastable) shapes. f32 scalar. */
export function mse(a: Tensor<"f32", number>, b: Tensor<"f32", number>): Tensor<"f32", 0> {
  return a.sub(b).square().mean();
}
