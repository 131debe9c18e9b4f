/**
 * The model-variant examples (examples/prefix_lm.ts, examples/packed_documents.ts): each one's mask
 * on a small row equals a hand-drawn grid, its batches carry the targets the example promises, the
 * whole model on the interpreter sees what the mask says (prefix both ways, documents apart,
 * positions restarting per document), and a shrunk copy trains a few steps on WebGPU.
 */
import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { denseMask } from "../compiler/ir/mask.ts";
import prefixLm, { prefixMask, reversalBatch } from "../examples/prefix_lm.ts";
import packedDocuments, { packedBatch, packedMask } from "../examples/packed_documents.ts";
import { type AnyModel, type Batch, trace } from "../spec/mod.ts";
import { train } from "../runtime/train/mod.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";

/** A [B, T, T] 0/1 mask of row 0 as T rows of T digits, to compare with a drawn grid. */
function grid(mask: Uint8Array, T: number): string[] {
  return Array.from({ length: T }, (_, i) => Array.from(mask.subarray(i * T, (i + 1) * T)).join(""));
}

const bytes = (s: string) => Array.from(new TextEncoder().encode(s));
const TINY = { dim: 8, heads: 2, layers: 1, hidden: 16 };

/** Random parameters in [-0.5, 0.5], seeded, by path. */
function randomParams(m: AnyModel, config: Record<string, unknown>, dims: Record<string, number>) {
  let s = 12345;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5;
  return Object.fromEntries(
    trace(m, { config, dims }).params.map((p) => {
      const n = p.decl.shape.reduce((a, b) => a * b, 1);
      return [p.path, Float32Array.from({ length: n }, next)];
    }),
  );
}

/** The `logits` entry on the interpreter: f32 [T, vocab] of row 0, as one array per position. */
function logits(m: AnyModel, config: Record<string, unknown>, feed: Batch, T: number): number[][] {
  const dims = { batch: 1, seq: T };
  const traced = trace(m, { config, dims, entry: "logits" });
  const [out] = interpret([traced.outputs.logits!], { params: randomParams(m, config, dims), inputs: feed });
  const V = out!.shape.at(-1)!;
  return Array.from({ length: T }, (_, t) => Array.from(out!.data.slice(t * V, (t + 1) * V)));
}

const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) < 1e-9);

Deno.test("prefix_lm: a row's mask, targets and prefix are the drawn ones", () => {
  // a b = | b a . | - -   (prompt = prefix, answer, padding)
  const batch = reversalBatch([{ prompt: "ab=", answer: "ba." }], 8);
  assert.deepEqual(Array.from(batch.layout_prefix!), [1, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(batch.targets!), [-1, -1, ...bytes("ba."), -1, -1, -1]);
  const fields = { prefix: Int32Array.from(batch.layout_prefix!) };
  assert.deepEqual(grid(denseMask(prefixMask(true).expr, fields, 1, 8), 8), [
    "11100000", // the prompt sees the whole prompt
    "11100000",
    "11100000",
    "11110000", // the answer: the prompt and its own past
    "11111000",
    "11111100",
    "11111110", // padding (unscored) stays causal
    "11111111",
  ]);
  assert.deepEqual(grid(denseMask(prefixMask(false).expr, fields, 1, 8), 8).slice(0, 3), [
    "10000000", // the baseline: causal everywhere
    "11000000",
    "11100000",
  ]);
});

Deno.test("prefix_lm on the interpreter: the prompt is read both ways, the answer causally", () => {
  const T = 8;
  const row = (prompt: string, answer: string) => {
    const b = reversalBatch([{ prompt, answer }], T);
    return { tokens: b.tokens!, layout_prefix: b.layout_prefix! };
  };
  for (const bidirectional of [true, false]) {
    const config = { ...TINY, bidirectional };
    const base = logits(prefixLm as AnyModel, config, row("ab=", "ba."), T);
    const laterPrompt = logits(prefixLm as AnyModel, config, row("ac=", "ba."), T);
    const laterAnswer = logits(prefixLm as AnyModel, config, row("ab=", "bc."), T);
    // Position 0 sees prompt byte 1 only through the bidirectional prefix.
    assert.equal(close(base[0]!, laterPrompt[0]!), !bidirectional, `bidirectional=${bidirectional}`);
    // An answer byte (position 4) is never seen by positions before it.
    for (let t = 0; t < 4; t++) assert.ok(close(base[t]!, laterAnswer[t]!), `position ${t}`);
    assert.ok(!close(base[4]!, laterAnswer[4]!));
  }
});

Deno.test("packed_documents: a row's mask, positions and targets are the drawn ones", () => {
  // ^ b : b c $ | ^ c : c d $ | - -   (two documents, BOS ^ and EOS $, then padding)
  const batch = packedBatch([["b:bc", "c:cd"]], 14);
  const [bos, eos] = [SPECIAL.bos, SPECIAL.eos];
  assert.deepEqual(Array.from(batch.tokens!).slice(0, 12), [
    bos,
    ...bytes("b:bc"),
    eos,
    bos,
    ...bytes("c:cd"),
    eos,
  ]);
  assert.deepEqual(Array.from(batch.layout_doc!), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1]);
  assert.deepEqual(Array.from(batch.layout_pos!).slice(0, 12), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
  // BOS -> key is not scored, nor EOS -> the next document.
  const doc = (text: string) => [-1, ...bytes(text), eos, -1];
  assert.deepEqual(Array.from(batch.targets!), [...doc(":bc"), ...doc(":cd"), -1, -1]);
  const fields = { doc: Int32Array.from(batch.layout_doc!) };
  assert.deepEqual(grid(denseMask(packedMask().expr, fields, 1, 14), 14), [
    "10000000000000",
    "11000000000000",
    "11100000000000",
    "11110000000000",
    "11111000000000",
    "11111100000000",
    "00000010000000", // document 1 starts afresh
    "00000011000000",
    "00000011100000",
    "00000011110000",
    "00000011111000",
    "00000011111100",
    "00000000000000", // padding sees nothing
    "00000000000000",
  ]);
});

Deno.test("packed_documents on the interpreter: a packed document reads as if it were alone", () => {
  const feed = (b: Batch) => ({ tokens: b.tokens!, layout_doc: b.layout_doc!, layout_pos: b.layout_pos! });
  const T = 14;
  const run = (docs: string[]) => logits(packedDocuments as AnyModel, TINY, feed(packedBatch([docs], T)), T);
  const [packed, alone, otherFirst] = [run(["b:bc", "c:cd"]), run(["c:cd"]), run(["x:xy", "c:cd"])];
  for (let t = 0; t < 6; t++) {
    assert.ok(close(packed[6 + t]!, alone[t]!), `document 1 position ${t} differs from the document alone`);
    assert.ok(close(packed[6 + t]!, otherFirst[6 + t]!), `document 1 position ${t} sees document 0`);
  }
  // Position 2 holds ':' in both rows; it differs only through the key it attends to.
  assert.ok(!close(packed[2]!, otherFirst[2]!), "document 0 does not read its own key");
});

for (
  const [name, m, path] of [
    ["prefix_lm", prefixLm, "../examples/prefix_lm.ts"],
    ["packed_documents", packedDocuments, "../examples/packed_documents.ts"],
  ] as const
) {
  Deno.test(`${name}: a shrunk copy trains 3 steps on WebGPU with finite, falling loss`, async () => {
    await withTempDir(`variants_${name}_`, async (dir) => {
      const result = await train({
        model: m as AnyModel,
        specPath: new URL(path, import.meta.url).pathname,
        out: dir,
        config: TINY,
        dims: { batch: 4 },
        settings: { steps: 3, lr: 0.03, warmup: 1, logEvery: 1, inFlight: 1 },
      });
      const losses = result.records.map((r) => r.loss);
      assert.equal(losses.length, 3);
      assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
      // Near-zero logits at init: the loss starts near ln 256 = 5.55 (ln 261 = 5.56 with the specials).
      assert.ok(Math.abs(losses[0]! - Math.log(256)) < 0.5, `step 1 loss ${losses[0]}`);
      assert.ok(losses[2]! < losses[0]!, `losses ${losses} do not fall`);
    });
  });
}

Deno.test("a row too short for the examples' data is refused, naming the key and the seq needed", () => {
  const prefixConfig = trace(prefixLm as AnyModel).config as never;
  assert.throws(
    () => prefixLm.data!(prefixConfig, { batch: 2, seq: 12 }),
    /prefix_lm: maxLength 8 needs seq >= 18, got 12/,
  );
  const packedConfig = trace(packedDocuments as AnyModel).config as never;
  assert.throws(
    () => packedDocuments.data!(packedConfig, { batch: 2, seq: 10 }),
    /packed_documents: maxRun 8 needs seq >= 12, got 10/,
  );
});
