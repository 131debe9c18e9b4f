/**
 * examples/text_lm_bpe.ts trains on WebGPU (shrunk to a tiny backbone) with its BPE vocabulary, and the
 * run's checkpoint alone rebuilds the tokenizer: run.json's config holds its merges.
 */
import assert from "node:assert/strict";
import textLmBpe from "../examples/text_lm_bpe.ts";
import type { AnyModel } from "../spec/mod.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { train } from "../runtime/train/mod.ts";
import { loadTokenizerJson, tokenizerFromConfig } from "../runtime/mod.ts";
import { type SequenceConfig, sequenceGeometry } from "../spec/transfusion/sequence.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";

const SPEC = new URL("../examples/text_lm_bpe.ts", import.meta.url).pathname;
const TOKENIZER = new URL("../examples/tokenizers/mnist_captions.json", import.meta.url);

Deno.test("text_lm_bpe trains 2 steps on WebGPU and its run rebuilds the BPE", async () => {
  await withTempDir("bpe_gpu_test_", async (dir) => {
    const { tokenizer } = await loadTokenizerJson(TOKENIZER);
    const result = await train({
      model: textLmBpe as AnyModel,
      specPath: SPEC,
      out: dir,
      config: { "backbone.dim": 16, "backbone.depth": 1, "backbone.heads": 2, "backbone.hidden": 32 },
      dims: { batch: 2 },
      settings: { steps: 2, warmup: 1, logEvery: 1, inFlight: 1 },
    });
    assert.equal(result.records.length, 2);
    // At init the logits are near zero, so the loss is near ln(vocab) = ln(326) = 5.79.
    const first = result.records[0]!.loss;
    assert.ok(Math.abs(first - Math.log(tokenizer.vocabSize)) < 0.5, `step 1 loss ${first}`);
    assert.ok(result.records.every((r) => Number.isFinite(r.loss)));

    const run = (await loadCheckpoint(dir)).run;
    const config = run.config as unknown as SequenceConfig;
    assert.equal(config.text.vocab, tokenizer.vocabSize);
    const rebuilt = sequenceGeometry(config).tokenizer;
    assert.deepEqual(rebuilt.config, tokenizer.config);
    assert.deepEqual(tokenizerFromConfig(rebuilt.config).encode("the number seven"), [263, 277, 315]);
  });
});
