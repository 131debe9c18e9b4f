/**
 * The digit classifier's checkpoints: the shipped one (weights only) fits the spec's current source
 * and reads held-out digits well; a cache comes first, a stale or short checkpoint is trained again,
 * and training never writes into the shipped folder.
 */
import assert from "node:assert/strict";
import classifierSpec from "../examples/digit_classifier.ts";
import { digitClassifier } from "../data/digit_classifier.ts";
import { loadCheckpoint, specHash } from "../runtime/checkpoint.ts";
import { CLASSIFIER_SHIPPED, CLASSIFIER_SPEC } from "../cli/eval.ts";
import { testDigits } from "../data/mnist_captions.ts";
import { MNIST_PIXELS } from "../data/mnist.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";

Deno.test("the shipped classifier was trained from the spec as it is now, weights only", async () => {
  const shipped = await loadCheckpoint(CLASSIFIER_SHIPPED);
  assert.equal(shipped.run.spec.hash, await specHash(await Deno.readTextFile(CLASSIFIER_SPEC)), "retrain it");
  assert.equal(shipped.optimizer, undefined, "weights only");
  assert.ok(shipped.run.metrics.test_accuracy! >= 0.95, `test accuracy ${shipped.run.metrics.test_accuracy}`);
});

Deno.test("classifier checkpoints: shipped when no cache, the cache first, trained when short", async () => {
  await withTempDir("classifier_test_", async (dir) => {
    const cache = `${dir}/cache`;
    const base = { model: classifierSpec, specPath: CLASSIFIER_SPEC, dir: cache };
    const fromShipped = await digitClassifier({ ...base, shipped: CLASSIFIER_SHIPPED });
    try {
      assert.equal(fromShipped.trained, false);
      assert.equal(fromShipped.source, CLASSIFIER_SHIPPED);
      // It reads real held-out digits as well as it says it does.
      const test = testDigits();
      const n = 200;
      const images = Array.from(
        { length: n },
        (_, i) => test.images.slice(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS),
      );
      const predicted = await fromShipped.classify(images);
      const right = predicted.filter((p, i) => p === test.labels[i]).length;
      assert.ok(right / n >= 0.9, `${right} of ${n}`);
    } finally {
      fromShipped.destroy();
    }
    await assert.rejects(Deno.stat(cache), Deno.errors.NotFound, "loading writes nothing");

    // A short checkpoint stands in for the shipped one: asked for more steps, it is trained again.
    const short = `${dir}/short`;
    const first = await digitClassifier({ ...base, dir: short, steps: 3 });
    first.destroy();
    assert.equal(first.trained, true);
    assert.equal((await loadCheckpoint(short)).run.step, 3);
    const enough = await digitClassifier({ ...base, shipped: short, steps: 3 });
    enough.destroy();
    assert.equal(enough.source, short, "the shipped folder serves when it has the steps");
    const before = (await Deno.stat(`${short}/checkpoint/run.json`)).mtime?.getTime();
    const trained = await digitClassifier({ ...base, shipped: short, steps: 5 });
    trained.destroy();
    assert.equal(trained.trained, true);
    assert.match(trained.source, /trained now into .*cache/);
    assert.equal((await loadCheckpoint(cache)).run.step, 5);
    assert.equal(
      (await Deno.stat(`${short}/checkpoint/run.json`)).mtime?.getTime(),
      before,
      "shipped untouched",
    );
    // The cache now comes first.
    const cached = await digitClassifier({ ...base, shipped: short, steps: 5 });
    cached.destroy();
    assert.equal(cached.trained, false);
    assert.equal(cached.source, cache);
  });
});
