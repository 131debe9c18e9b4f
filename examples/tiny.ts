import { input, linear, model } from "../spec/mod.ts";

export default model({
  name: "tiny",
  config: { dim: 3, hidden: 4 },
  dims: { batch: 2 },
  params: (c) => ({ l1: linear(c.dim, c.hidden), l2: linear(c.hidden, 1) }),
  inputs: (c) => ({ x: input("f32", ["batch", c.dim]), y: input("f32", ["batch", 1]) }),
  loss: (p, { x, y }) => p.l2(p.l1(x).tanh()).sub(y).square().mean(),
});
