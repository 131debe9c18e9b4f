/**
 * Which kernels a conv2d lowers to (no device needed: the plan's kernels and their ops). A pointwise
 * conv (1x1, stride 1, no padding, one group) is a matmul over the pixels and must get the matmul
 * kernel, with the bias and activation as its epilogue, its gradients too; anything else keeps the
 * conv kernel. The numbers of both are checked against the interpreter in conformance_test.ts.
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { type Node, node } from "../compiler/ir/mod.ts";
import type { Plan } from "../compiler/plan.ts";

const param = (path: string, shape: number[]) => node("param", [], { path, shape, dtype: "f32" });

/** tanh(conv(x, w) + b) and the loss sum(y^2), for a conv with `kernel` x `kernel` taps. */
function layer(kernel: number, padding: number, stride = 1, groups = 1): { y: Node; loss: Node } {
  const x = param("x", [2, 6, 6, 8]);
  const w = param("w", [kernel, kernel, 8 / groups, 12]);
  const conv = node("conv2d", [x, w], { stride, padding, groups });
  const b = node("expand", [node("reshape", [param("b", [12])], { shape: [1, 1, 1, 12] })], {
    shape: conv.shape,
  });
  const y = node("tanh", [node("add", [conv, b], null)], null);
  const sq = node("mul", [y, y], null);
  const loss = node("reshape", [node("sum", [sq], { axes: [0, 1, 2, 3] })], { shape: [] });
  return { y, loss };
}

/** The ops of each kernel an entry dispatches. */
function kernelOps(plan: Plan, entry: string): string[][] {
  return plan.entries[entry]!.steps.flatMap((s) =>
    s.kind === "dispatch" ? [[...plan.kernels[s.kernel]!.ops]] : []
  );
}

for (const adapterClass of ["cpu", "gpu"] as const) {
  Deno.test(`conv lowering (${adapterClass}): a 1x1 conv is a matmul with the epilogue fused`, () => {
    const plan = compileGraph(layer(1, 0), { adapterClass, grads: true });
    const forward = kernelOps(plan, "forward");
    assert.ok(forward.every((ops) => !ops.includes("conv2d")), `forward kernels: ${JSON.stringify(forward)}`);
    const product = forward.find((ops) => ops.includes("matmul"));
    assert.ok(product, `no matmul kernel in ${JSON.stringify(forward)}`);
    assert.ok(product.includes("tanh") && product.includes("add"), `epilogue not fused: ${product}`);
    const backward = kernelOps(plan, "gradients");
    assert.ok(
      backward.every((ops) => !ops.includes("conv2d")),
      `gradient kernels: ${JSON.stringify(backward)}`,
    );
    // dx = dy w^T and dw = x^T dy, each a product over the pixels.
    assert.ok(backward.filter((ops) => ops.includes("matmul")).length >= 2, JSON.stringify(backward));
  });

  Deno.test(`conv lowering (${adapterClass}): 3x3, padded 1x1, strided and grouped 1x1 keep the conv kernel`, () => {
    for (
      const [kernel, padding, stride, groups] of [[3, 1, 1, 1], [1, 1, 1, 1], [1, 0, 2, 1], [1, 0, 1, 2]]
    ) {
      const plan = compileGraph(layer(kernel!, padding!, stride, groups), { adapterClass });
      const forward = kernelOps(plan, "forward");
      assert.ok(
        forward.some((ops) => ops[0] === "conv2d"),
        `${kernel}x${kernel} pad ${padding} stride ${stride} groups ${groups}: ${JSON.stringify(forward)}`,
      );
    }
  });
}
