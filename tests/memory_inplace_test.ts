/**
 * In-place aliasing in the memory plan: an elementwise kernel writes over a kernel result that dies
 * with it when it reads that result only at the element it writes. Checked on the planner alone,
 * on the offsets a lowered plan gets, and on the device against the interpreter.
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { interpret } from "../compiler/interpreter.ts";
import { type Node, node, toposort } from "../compiler/ir/mod.ts";
import { planMemory } from "../compiler/lower/memory.ts";
import { lowerEntry } from "../compiler/lower/lower.ts";
import { defaultVariant } from "../kernels/matmul.ts";
import { defaultAttentionVariant } from "../kernels/flash_attention.ts";
import { Executor } from "../runtime/executor.ts";
import { Fixture, seeded } from "./conformance_cases.ts";

Deno.test("planMemory: an alias takes over its host's space, which stays taken until the alias dies", () => {
  const lifetimes = [
    { id: 1, words: 8, start: 0, end: 1 },
    { id: 2, words: 8, start: 1, end: 3, alias: 1 },
    { id: 3, words: 8, start: 2, end: 3 },
  ];
  const plan = planMemory(lifetimes);
  assert.deepEqual(plan.offsets.get(2), plan.offsets.get(1));
  assert.notDeepEqual(plan.offsets.get(3), plan.offsets.get(2), "the host's space is still in use at 2");
  assert.deepEqual(plan.arenaWords, [16]);
  // Without the alias, 2 cannot use 1's space (1 is read while 2 is written); 3 reuses it later.
  const apart = planMemory(lifetimes.map(({ id, words, start, end }) => ({ id, words, start, end })));
  assert.notDeepEqual(apart.offsets.get(2), apart.offsets.get(1));
  assert.deepEqual(apart.offsets.get(3), apart.offsets.get(1));
});

Deno.test("planMemory ignores an alias whose host lives on or differs in size", () => {
  const plan = planMemory([
    { id: 1, words: 8, start: 0, end: 2 },
    { id: 2, words: 8, start: 1, end: 3, alias: 1 },
    { id: 3, words: 4, start: 0, end: 1 },
    { id: 4, words: 8, start: 1, end: 2, alias: 3 },
  ]);
  assert.notDeepEqual(plan.offsets.get(2), plan.offsets.get(1));
  assert.notDeepEqual(plan.offsets.get(4), plan.offsets.get(3));
});

/** r = a·b is read by a column sum and, last, by an elementwise kernel; `transpose` reads it crosswise. */
function graph(f: Fixture, transpose: boolean): { out: Node } {
  const product = node("matmul", [f.param([8, 6]), f.param([6, 8])], null);
  // Column sums: a row sum would run inside the reader's kernel (row fusion) instead.
  const total = node("expand", [node("sum", [product], { axes: [0] })], { shape: [8, 8] });
  const read = transpose ? node("permute", [product], { perm: [1, 0] }) : product;
  return { out: node("mul", [node("tanh", [read], null), total], null) };
}

/** Words of `act` at the peak when `out` is lowered alone, with or without in-place writes. */
function peakWords(out: Node, inPlace: boolean): number {
  const params = toposort([out]).filter((n) => n.op === "param");
  const leaves = new Map(params.map((n, i) => [n.id, { buffer: "params", offset: 64 * i }]));
  const lowered = lowerEntry({ outputs: [{ name: "out", node: out }], inputs: [], placed: [], leaves }, {
    prefix: "m",
    inPlace,
    matmulVariant: (s) => defaultVariant("cpu", s),
    attentionVariant: (s) => defaultAttentionVariant("cpu", s),
  });
  return lowered.arenaWords[0]!;
}

Deno.test("an elementwise kernel reading a dying result at its own element writes in place", async () => {
  const f = new Fixture(seeded(11));
  f.caseName = "inplace";
  const { out } = graph(f, false);
  // product 64 words (live to the last kernel), column sums 8, out 64: 136 apart, 72 when out takes the product's place.
  assert.equal(peakWords(out, false), 136);
  assert.equal(peakWords(out, true), 72);
  // Read transposed, the product's elements are read by other threads than the ones writing them.
  const crosswise = graph(new Fixture(seeded(11)), true).out;
  assert.equal(peakWords(crosswise, true), 136);

  const plan = compileGraph({ out });
  assert.equal(plan.entries.forward!.peakBytes, 4 * 72, "compileGraph plans in place when it fuses");
  const executor = await Executor.create(plan);
  try {
    for (const p of plan.params) await executor.setParam(p.path, f.params[p.path]!);
    const got = await executor.run("forward", {});
    const ref = interpret([out], { params: f.params })[0]!.data;
    ref.forEach((r, i) => assert.ok(Math.abs(got.out![i]! - r) <= 1e-5 * (1 + Math.abs(r)), `out[${i}]`));
  } finally {
    executor.destroy();
  }
});
