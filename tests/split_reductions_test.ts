/**
 * Long reductions to few outputs are split in two passes (compiler/passes/split_reductions.ts): the
 * rewrite keeps every value under the reference interpreter, takes the shape it promises per adapter
 * class, and the plan it leads to runs on WebGPU with the loss, a max and the gradients equal to the
 * interpreter's.
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { interpret } from "../compiler/interpreter.ts";
import { type Node, node, toposort } from "../compiler/ir/mod.ts";
import { splitFactor, splitLongReductions } from "../compiler/passes/split_reductions.ts";
import { Fixture, seeded } from "./conformance_cases.ts";
import { assertClose, gradientsBesideInterpreter } from "./fixtures/gpu_gradients.ts";

const TOL = 2e-5;
const mul = (a: Node, b: Node) => node("mul", [a, b], null);

/** A loss over a whole [64, 32, 16] activation (32768 squares) and a row max over [4, 128, 160]. */
function graph(f: Fixture) {
  const x = f.param([64, 32, 16]);
  const loss = node("reshape", [node("sum", [mul(x, x)], { axes: [0, 1, 2] })], { shape: [] });
  const y = f.param([4, 128, 160]);
  const max = node("reduce_max", [node("tanh", [y], null)], { axes: [1, 2] });
  // A short sum (fewer than 16384 per output) and one with many outputs stay one pass.
  const short = node("sum", [y], { axes: [2] });
  return { loss, max, short };
}

const reductions = (roots: readonly Node[]) =>
  toposort(roots).filter((n) => n.op === "sum" || n.op === "reduce_max").map((n) => n.shape.join("x"));

Deno.test("splitFactor: >= 1024 serial partials on lavapipe, <= 256 tree partials of >= 1024 on a GPU", () => {
  assert.equal(splitFactor(262144, 1, "cpu"), 1024);
  assert.equal(splitFactor(32768, 1, "cpu"), 1024, "chunks of 32 are still long enough");
  assert.equal(splitFactor(262144, 1, "gpu"), 256);
  // Four outputs share the partials; the factor divides the length.
  assert.equal(splitFactor(20480, 4, "cpu"), 256);
  assert.equal(splitFactor(20480, 4, "gpu"), 20);
  // A prime length has no divisor: no split.
  assert.equal(splitFactor(16411, 1, "cpu"), undefined);
});

Deno.test("splitLongReductions keeps values and splits only long reductions to few outputs", () => {
  const f = new Fixture(seeded(11));
  f.caseName = "split";
  const { loss, max, short } = graph(f);
  const split = splitLongReductions([loss, max, short], "cpu");
  assert.deepEqual(reductions(split), ["1024x1", "1x1", "4x256x1", "4x1x1", "4x128x1"]);
  const env = { params: f.params, inputs: f.inputs };
  const before = interpret([loss, max, short], env);
  const after = interpret(split, env);
  for (const [i, ref] of before.entries()) {
    assert.deepEqual(after[i]!.shape, ref.shape);
    for (let j = 0; j < ref.data.length; j++) {
      const [g, r] = [after[i]!.data[j]!, ref.data[j]!];
      assert.ok(Math.abs(g - r) <= 1e-9 * (1 + Math.abs(r)), `root ${i}[${j}]: split ${g}, whole ${r}`);
    }
  }
});

Deno.test("split reductions on WebGPU: loss, max and gradients match the interpreter", async () => {
  const f = new Fixture(seeded(5));
  f.caseName = "split";
  const { loss, max } = graph(f);
  const plan = compileGraph({ out: max, loss }, { grads: true });
  const reduceKernels = plan.entries.forward!.steps.flatMap((s) =>
    s.kind === "dispatch" && ["sum", "reduce_max"].includes(plan.kernels[s.kernel]!.ops[0]!) ? [s.kernel] : []
  );
  assert.equal(reduceKernels.length, 4, `two passes each: ${reduceKernels.map((k) => plan.kernels[k]!.doc)}`);
  assertClose(await gradientsBesideInterpreter(plan, f, max, loss), TOL);
});
