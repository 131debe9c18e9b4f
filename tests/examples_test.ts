import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { SpecError } from "../compiler/ir/mod.ts";
import { type AnyModel, trace, type TracedModel } from "../spec/mod.ts";
import mlp from "../examples/mlp.ts";
import transformer from "../examples/transformer.ts";

// Both examples must trace with their defaults, declare the parameters a checkpoint expects, start
// near the loss of a uniform guess, and reject a bad config with a message naming the key and value.

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = random(7);
const gaussian = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const count = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/** Parameter values drawn as each declaration's initializer says. */
function initParams(traced: TracedModel): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const { path, decl } of traced.params) {
    const init = decl.init;
    out[path] = Array.from({ length: count(decl.shape) }, () => {
      switch (init.kind) {
        case "normal":
          return gaussian() * init.std;
        case "uniform":
          return (rand() * 2 - 1) * init.bound;
        case "zeros":
          return 0;
        case "ones":
          return 1;
        case "values":
          return init.data[0]!; // constants are filled from their values below
      }
    });
    if (init.kind === "values") out[path] = [...init.data];
  }
  return out;
}

function configError(m: AnyModel, config: Record<string, unknown>): string {
  try {
    trace(m, { config });
  } catch (e) {
    assert.ok(e instanceof SpecError, `expected a SpecError, got ${e}`);
    return e.message;
  }
  return assert.fail(`config ${JSON.stringify(config)} should have been rejected`);
}

const shapes = (t: TracedModel) => Object.fromEntries(t.params.map((p) => [p.path, [...p.decl.shape]]));

Deno.test("examples/mlp.ts", async (t) => {
  await t.step("traces with defaults: f32 scalar loss, an accuracy metric, the expected params", () => {
    const traced = trace(mlp);
    const loss = traced.outputs["loss"]!;
    assert.deepEqual([loss.dtype, loss.shape], ["f32", []]);
    assert.deepEqual(traced.outputs["accuracy"]!.shape, []);
    assert.deepEqual(shapes(traced), {
      "fc1.w": [784, 256],
      "fc1.b": [256],
      "fc2.w": [256, 10],
      "fc2.b": [10],
    });
    assert.deepEqual(traced.inputs.map((n) => [n.arg.name, n.dtype, [...n.shape]]), [
      ["x", "f32", [32, 784]],
      ["y", "i32", [32]],
    ]);
  });
  await t.step("at init the loss is near ln 10 and accuracy agrees with the logits entry", () => {
    const dims = { batch: 8 };
    const traced = trace(mlp, { dims });
    const params = initParams(traced);
    const x = Array.from({ length: 8 * 784 }, () => rand());
    const y = Array.from({ length: 8 }, (_, i) => i % 10);
    const [loss, accuracy] = interpret([traced.outputs["loss"]!, traced.outputs["accuracy"]!], {
      inputs: { x, y },
      params,
    });
    assert.ok(Math.abs(loss!.data[0]! - Math.log(10)) < 0.05, `loss ${loss!.data[0]} vs ln 10`);
    const entry = trace(mlp, { dims, entry: "logits" });
    const logits = interpret([entry.outputs["logits"]!], { inputs: { x }, params })[0]!.data;
    const hits = y.filter((label, i) => {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      return row[label]! >= Math.max(...row);
    });
    assert.equal(accuracy!.data[0], hits.length / 8);
    // zero weights and a bias favouring class 3: exactly the rows labelled 3 are right
    const biased = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.map(() => 0)]));
    biased["fc2.b"]![3] = 1;
    const labels = [3, 1, 3, 0, 9, 3, 2, 2];
    const forced = interpret([traced.outputs["accuracy"]!], { inputs: { x, y: labels }, params: biased })[0]!;
    assert.equal(forced.data[0], 3 / 8);
  });
  await t.step("bad config values and unknown keys are named", () => {
    for (const msg of [configError(mlp, { hidden: 0 }), configError(mlp, { hidden: 2.5 })]) {
      assert.match(msg, /config "hidden" = (0|2\.5)/);
    }
    assert.match(configError(mlp, { classes: "ten" }), /config "classes" = "ten"/);
    assert.match(
      configError(mlp, { hiden: 128 }),
      /unknown config key "hiden" \(did you mean "hidden"\?\); known keys, nearest first: hidden, dim, classes/,
    );
  });
});

Deno.test("examples/transformer.ts", async (t) => {
  await t.step("traces with defaults: f32 scalar loss and the expected params", () => {
    const traced = trace(transformer);
    const loss = traced.outputs["loss"]!;
    assert.deepEqual([loss.dtype, loss.shape], ["f32", []]);
    const [d, hidden, vocab] = [64, 192, 256];
    const block = (i: number) => ({
      [`blocks.${i}.norm1.g`]: [d],
      [`blocks.${i}.attn.wq.w`]: [d, d],
      [`blocks.${i}.attn.wk.w`]: [d, d],
      [`blocks.${i}.attn.wv.w`]: [d, d],
      [`blocks.${i}.attn.wo.w`]: [d, d],
      [`blocks.${i}.norm2.g`]: [d],
      [`blocks.${i}.mlp.w1.w`]: [d, hidden],
      [`blocks.${i}.mlp.w3.w`]: [d, hidden],
      [`blocks.${i}.mlp.w2.w`]: [hidden, d],
    });
    assert.deepEqual(shapes(traced), {
      "embed.table": [vocab, d],
      ...block(0),
      ...block(1),
      "norm.g": [d],
      "head.w": [d, vocab],
    });
    assert.deepEqual(traced.inputs.map((n) => [n.arg.name, n.dtype, [...n.shape]]), [
      ["tokens", "i32", [16, 32]],
      ["targets", "i32", [16, 32]],
    ]);
  });
  await t.step("config overrides reach the graph", () => {
    const traced = trace(transformer, { config: { layers: 3, dim: 32, heads: 2 } });
    assert.deepEqual(shapes(traced)["blocks.2.attn.wq.w"], [32, 32]);
    assert.equal(traced.params.length, 3 * 9 + 3);
  });
  const dims = { batch: 2, seq: 8 };
  const traced = trace(transformer, { dims });
  const params = initParams(traced);
  const tokens = Array.from({ length: 16 }, () => Math.floor(rand() * 256));
  await t.step("at init the loss is near ln 256", () => {
    const targets = [...tokens.slice(1), 0];
    const loss = interpret([traced.outputs["loss"]!], { inputs: { tokens, targets }, params })[0]!;
    assert.ok(Math.abs(loss.data[0]! - Math.log(256)) < 0.05, `loss ${loss.data[0]} vs ln 256`);
  });
  await t.step("the logits at a position do not depend on later tokens", () => {
    const logits = trace(transformer, { dims, entry: "logits" }).outputs["logits"]!;
    assert.deepEqual(logits.shape, [2, 8, 256]);
    const run = (tok: number[]) => interpret([logits], { inputs: { tokens: tok }, params })[0]!.data;
    const before = run(tokens);
    const changed = tokens.slice();
    changed[5] = (changed[5]! + 1) % 256; // batch 0, position 5
    const after = run(changed);
    const row = 256;
    for (let i = 0; i < 5 * row; i++) assert.equal(after[i], before[i], `logit ${i} before position 5 moved`);
    const moved = Array.from(
      { length: 3 * row },
      (_, i) => Math.abs(after[5 * row + i]! - before[5 * row + i]!),
    );
    assert.ok(Math.max(...moved) > 1e-6, "positions 5..7 should see the change");
    for (let i = 8 * row; i < 16 * row; i++) assert.equal(after[i], before[i], "batch 1 should be untouched");
  });
  await t.step("bad configs are named with their values", () => {
    assert.match(configError(transformer, { dim: -1 }), /config "dim" = -1/);
    assert.match(configError(transformer, { depth: 4 }), /unknown config key "depth"/);
    assert.match(configError(transformer, { heads: 5 }), /dim 64 must split into heads = 5/);
  });
});
