/**
 * An MLP classifier (MNIST-sized): 784 -> 256 -> 10 with a GELU in between, trained with
 * cross-entropy. The smallest complete spec: config, params, inputs, loss, and a forward entry.
 */
import {
  crossEntropy,
  gelu,
  input,
  linear,
  type Materialized,
  model,
  oneHot,
  type Tensor,
} from "../spec/mod.ts";

const config = { dim: 784, hidden: 256, classes: 10 };
type Config = typeof config;

const params = (c: Config) => ({
  fc1: linear(c.dim, c.hidden),
  fc2: linear(c.hidden, c.classes),
});
type Params = Materialized<ReturnType<typeof params>>;

/** x: [B, dim] -> logits [B, classes]. */
function forward(p: Params, x: Tensor<"f32", 2>): Tensor<"f32", 2> {
  return p.fc2(gelu(p.fc1(x)));
}

/** The fraction of rows whose label has the largest logit (a tie counts as correct). */
function accuracy(logits: Tensor<"f32", 2>, labels: Tensor<"i32", 1>): Tensor<"f32", 0> {
  const labelLogit = logits.mul(oneHot(labels, logits.dim(-1))).sum(-1); // [B]
  return labelLogit.ge(logits.max(-1)).cast("f32").mean();
}

export default model({
  name: "mlp",
  config,
  dims: { batch: 32 },
  params,
  inputs: (c) => ({
    x: input("f32", ["batch", c.dim]), // flattened images
    y: input("i32", ["batch"]), // class labels
  }),
  loss: (p, { x, y }) => {
    const logits = forward(p, x);
    return { loss: crossEntropy(logits, y), metrics: { accuracy: accuracy(logits, y) } };
  },
  entries: {
    logits: {
      inputs: (c) => ({ x: input("f32", ["batch", c.dim]) }),
      outputs: (p, { x }) => ({ logits: forward(p, x as Tensor<"f32", 2>) }),
    },
  },
});
