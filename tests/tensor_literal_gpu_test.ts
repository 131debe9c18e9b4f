/**
 * Tensor literals on WebGPU: a literal is const runs concatenated and reshaped, so its lowering is
 * the const and concat kernels'; this checks a float and an integer literal, each in arithmetic with
 * an input, against the reference interpreter (exact: the values are small integers and halves).
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { interpret } from "../compiler/interpreter.ts";
import { node } from "../compiler/ir/mod.ts";
import { Executor } from "../runtime/executor.ts";
import { Tensor, tensor } from "../spec/mod.ts";

Deno.test("float and integer literals run on the device as the interpreter says", async () => {
  const x = new Tensor<"f32", 2>(node("input", [], { name: "x", shape: [2, 3], dtype: "f32" }));
  const k = new Tensor<"i32", 1>(node("input", [], { name: "k", shape: [4], dtype: "i32" }));
  const scaled = tensor([[1, 2.5, 2.5], [-3, 0, 7]], "f32").mul(x).add(tensor([0.5, 0.5, 1], "f32"));
  const counted = tensor([4, 4, 4, -2]).add(k).mul(tensor(3));
  const outputs = { scaled: scaled.node, counted: counted.node };
  const inputs = { x: [1, 2, 3, 4, 5, 6], k: [1, -1, 0, 10] };
  const want = interpret([scaled.node, counted.node], { inputs });
  assert.deepEqual([...want[0]!.data], [1.5, 5.5, 8.5, -11.5, 0.5, 43]);
  assert.deepEqual([...want[1]!.data], [15, 9, 12, 24]);
  for (const adapterClass of ["cpu", "gpu"] as const) {
    const plan = compileGraph(outputs, { adapterClass });
    const executor = await Executor.create(plan);
    try {
      const got = await executor.run("forward", inputs);
      assert.deepEqual([...got.scaled!], [...want[0]!.data], `${adapterClass}: scaled`);
      assert.deepEqual([...got.counted!], [...want[1]!.data], `${adapterClass}: counted`);
    } finally {
      executor.destroy();
    }
  }
});
