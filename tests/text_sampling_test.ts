/**
 * Text samplers: greedy is the argmax; a temperature draw follows the softmax (frequencies over many
 * seeded draws, and the exact cut points of the cumulative distribution); top-k and top-p keep the
 * candidates they should; the seeded uniforms are reproducible and spread over [0, 1).
 */
import assert from "node:assert/strict";
import {
  greedyToken,
  sampleToken,
  textUniform,
  tokenDistribution,
} from "../runtime/generate/text_sampling.ts";

const softmax = (xs: readonly number[], temperature = 1) => {
  const e = xs.map((x) => Math.exp(x / temperature));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

Deno.test("greedy picks the highest score, the first on ties", () => {
  assert.equal(greedyToken([0.1, 3, -2, 3]), 1);
  assert.equal(sampleToken(Float32Array.from([5, 1, 9, 2]), {}, 0.99), 2);
  assert.equal(sampleToken([5, 1, 9, 2], { temperature: 0, topK: 2 }, 0), 2);
});

Deno.test("a temperature draw follows the softmax of scores / temperature", async (t) => {
  const scores = [1, 2, 0.5, -1];
  await t.step("the distribution is the softmax, most probable first", () => {
    for (const temperature of [1, 0.5, 2]) {
      const { ids, probs } = tokenDistribution(scores, { temperature });
      assert.deepEqual(ids, [1, 0, 2, 3]);
      const want = softmax(scores, temperature);
      ids.forEach((id, i) => assert.ok(Math.abs(probs[i]! - want[id]!) < 1e-12));
    }
  });
  await t.step("u walks the cumulative distribution", () => {
    const p = softmax(scores);
    // Order by probability: 1, 0, 2, 3.
    assert.equal(sampleToken(scores, { temperature: 1 }, 0), 1);
    assert.equal(sampleToken(scores, { temperature: 1 }, p[1]! - 1e-9), 1);
    assert.equal(sampleToken(scores, { temperature: 1 }, p[1]! + 1e-9), 0);
    assert.equal(sampleToken(scores, { temperature: 1 }, p[1]! + p[0]! + 1e-9), 2);
    assert.equal(sampleToken(scores, { temperature: 1 }, 1 - 1e-12), 3);
  });
  await t.step("seeded draws hit each token about as often as its probability", () => {
    const n = 20000;
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[sampleToken(scores, { temperature: 1 }, textUniform(7, 3, i))]!++;
    const p = softmax(scores);
    counts.forEach((c, id) => {
      const sd = Math.sqrt(n * p[id]! * (1 - p[id]!));
      assert.ok(Math.abs(c - n * p[id]!) < 5 * sd, `token ${id}: ${c} of ${n}, expected ${n * p[id]!}`);
    });
  });
});

Deno.test("top-k and top-p keep only the leading candidates", async (t) => {
  const scores = [0, 3, 1, 2, -5];
  await t.step("top-k keeps the k highest, renormalized", () => {
    const { ids, probs } = tokenDistribution(scores, { temperature: 1, topK: 2 });
    assert.deepEqual(ids, [1, 3]);
    const want = softmax([3, 2]);
    probs.forEach((p, i) => assert.ok(Math.abs(p - want[i]!) < 1e-12));
    for (let i = 0; i < 200; i++) {
      assert.ok([1, 3].includes(sampleToken(scores, { temperature: 1, topK: 2 }, textUniform(1, 0, i))));
    }
  });
  await t.step("top-p keeps the fewest tokens reaching the mass", () => {
    const p = softmax(scores); // order 1, 3, 2, 0, 4
    const justOver = p[1]! + p[3]! + 1e-6;
    assert.deepEqual(tokenDistribution(scores, { temperature: 1, topP: p[1]! - 1e-6 }).ids, [1]);
    assert.deepEqual(tokenDistribution(scores, { temperature: 1, topP: p[1]! + 1e-6 }).ids, [1, 3]);
    assert.deepEqual(tokenDistribution(scores, { temperature: 1, topP: justOver }).ids, [1, 3, 2]);
    assert.equal(tokenDistribution(scores, { temperature: 1, topP: 1 }).ids.length, 5);
  });
  await t.step("top-k then top-p", () => {
    const { ids, probs } = tokenDistribution(scores, { temperature: 1, topK: 3, topP: 0.95 });
    const kept = softmax([3, 2, 1]);
    // Within the top 3, tokens 1 and 3 hold kept[0] + kept[1] < 0.95, so token 2 stays as well.
    assert.ok(kept[0]! + kept[1]! < 0.95);
    assert.deepEqual(ids, [1, 3, 2]);
    assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });
  await t.step("-Infinity scores are never drawn", () => {
    const masked = [-Infinity, 1, -Infinity];
    for (let i = 0; i < 50; i++) {
      assert.equal(sampleToken(masked, { temperature: 3 }, textUniform(2, 0, i)), 1);
    }
  });
});

Deno.test("bad options are rejected with the option's name", () => {
  assert.throws(() => tokenDistribution([1, 2], { temperature: -1 }), /temperature/);
  assert.throws(() => tokenDistribution([1, 2], { temperature: 1, topK: 0 }), /topK/);
  assert.throws(() => tokenDistribution([1, 2], { temperature: 1, topP: 0 }), /topP/);
  assert.throws(() => sampleToken([1, 2], { temperature: 1 }, 1), /u must be/);
});

Deno.test("seeded uniforms repeat per (seed, stream, step) and differ across them", () => {
  assert.equal(textUniform(3, 1, 5), textUniform(3, 1, 5));
  const values = new Set<number>();
  for (const seed of [0, 1]) {
    for (const stream of [0, 1]) for (let i = 0; i < 10; i++) values.add(textUniform(seed, stream, i));
  }
  assert.equal(values.size, 40);
  for (const v of values) assert.ok(v >= 0 && v < 1);
  const mean = [...values].reduce((a, b) => a + b, 0) / values.size;
  assert.ok(Math.abs(mean - 0.5) < 0.15, `mean ${mean}`);
});
