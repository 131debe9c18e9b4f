/**
 * The BPE tokenizer (runtime/bpe*.ts): round trips, training by hand and determinism, the tokenizer.json
 * reader against a hand-written GPT-2-ordered file, save/load, refused format parts, and the wiring
 * into a Transfusion config and sequence assembly.
 */
import assert from "node:assert/strict";
import {
  BpeTokenizer,
  FIRST_MERGE_ID,
  fromTokenizerJson,
  loadTokenizerJson,
  SPECIAL,
  splitPieces,
  TokenizerError,
  tokenizerFromConfig,
  toTokenizerJson,
  trainBpe,
} from "../runtime/mod.ts";
import { byteLevelBytes, byteLevelText } from "../runtime/bpe_json.ts";
import { captionIds, sequenceGeometry } from "../spec/transfusion/sequence.ts";
import { transfusionConfig } from "../spec/transfusion/options.ts";
import { checkCaptionFits } from "../runtime/generate/prompts.ts";
import { type AnyModel, trace } from "../spec/mod.ts";
import type { Node } from "../compiler/mod.ts";

const shapeOf = (n: Node) => `${n.dtype}[${n.shape.join(", ")}]`;

const FIXTURE = new URL("./fixtures/bpe/gpt2_order.tokenizer.json", import.meta.url);
const CORPUS = [
  "the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.",
  "naïve café, déjà vu, straße, Ελληνικά, русский, 中文字符, 日本語のテキスト",
  "emoji 🙂🙂 👍🏽👍🏽 👨‍👩‍👧 family 🙂 the end",
  "  two spaces,\ttab,\n\nnew lines,\r\nwindows line,   three spaces   and trailing   ",
  "it's they'll we've I'm you'd 12345 3.14159 x=42; y = x * 2",
];
const SAMPLES = [
  "hello world",
  "héllo wörld, ça va? €100",
  "🙂 👍🏽 👨‍👩‍👧 🇫🇷",
  "   \t\t\n\n  \r\n   ",
  " leading and trailing ",
  "",
  "a\u00a0b\u2003c\u3000d\ufeffe",
  "the the the thethe",
];
/** Every pair that occurs is worth a merge here, so the small corpus reaches the target (with many ties). */
const trained = () => trainBpe(CORPUS, { vocab: 400, minFrequency: 1 });

Deno.test("decode(encode(x)) is x", async (t) => {
  const cases: [string, BpeTokenizer][] = [["trained", trained()], [
    "loaded",
    (await loadTokenizerJson(FIXTURE)).tokenizer,
  ]];
  for (const [name, tok] of cases) {
    await t.step(`${name}: ASCII, multibyte UTF-8, emoji, whitespace runs, empty`, () => {
      for (const text of [...SAMPLES, ...CORPUS]) {
        assert.equal(tok.decode(tok.encode(text)), text, JSON.stringify(text));
      }
    });
  }
  await t.step("merges make the text shorter than its bytes", () => {
    const tok = trained();
    const text = CORPUS.join("\n");
    assert.ok(tok.encode(text).length < 0.6 * new TextEncoder().encode(text).length);
  });
  await t.step("the empty string is no tokens", () => assert.deepEqual(trained().encode(""), []));
});

Deno.test("training merges by hand", async (t) => {
  const [a, b, c, d, space] = [97, 98, 99, 100, 32];
  await t.step("most frequent pair first; pieces weighted by count; minFrequency stops it", () => {
    // Pieces "abab" and " ab": (a,b) 3 times, (b,a) and (space,a) once each.
    const tok = trainBpe(["abab ab"], { vocab: 300 });
    assert.deepEqual(tok.config.merges, [[a, b]]);
    assert.equal(tok.vocabSize, 262);
    assert.deepEqual(tok.encode("abab ab"), [261, 261, space, 261]);
  });
  await t.step("ties go to the smaller (left, right) ids; a merge may use an earlier merge's token", () => {
    // Then (261 "ab", 261) and (space, 261) occur once each: space (32) is the smaller left id.
    const tok = trainBpe(["abab ab"], { vocab: 300, minFrequency: 1 });
    assert.deepEqual(tok.config.merges, [[a, b], [space, 261], [261, 261]]);
    assert.deepEqual(tok.encode("abab ab"), [263, 262]);
    // "ab" and " cd": all pairs occur once; (space, c) < (a, b) < (261 " c", d).
    assert.deepEqual(trainBpe(["ab cd"], { vocab: 300, minFrequency: 1 }).config.merges, [
      [space, c],
      [a, b],
      [261, d],
    ]);
  });
  await t.step("the vocab target stops training", () => {
    const tok = trainBpe(["abab ab"], { vocab: 262, minFrequency: 1 });
    assert.deepEqual(tok.config.merges, [[a, b]]);
  });
  await t.step("merges stay inside pre-tokenized pieces (no token spans a word boundary)", () => {
    const tok = trainBpe(["to be or not to be", "be or not"], { vocab: 350, minFrequency: 1 });
    for (let id = 261; id < tok.vocabSize; id++) {
      const text = new TextDecoder().decode(Uint8Array.from(tok.bytesOf(id)!));
      assert.equal(splitPieces(text, "gpt2").length, 1, `token ${id} ${JSON.stringify(text)} spans pieces`);
    }
  });
  await t.step("a bad vocab target is refused", () => {
    assert.throws(() => trainBpe(["x"], { vocab: 100 }), /vocab 100 must be an integer in \[261, /);
  });
});

Deno.test("training is deterministic", () => {
  const first = trained().config;
  assert.deepEqual(trained().config, first);
  assert.deepEqual(
    trainBpe([...CORPUS].reverse(), { vocab: 400, minFrequency: 1 }).config,
    first,
    "text order does not matter",
  );
  assert.equal(first.merges.length, 400 - 261, "the target is reached (no merge repeats a token here)");
});

Deno.test("a hand-written tokenizer.json in GPT-2's id order loads and encodes to the expected ids", async () => {
  const { tokenizer, notes } = await loadTokenizerJson(FIXTURE);
  // Merges: "h e" 261, "t he" 262, "Ġ h" 263, "Ġh a" 264, "a t" 265 (the file's ids are 256..260).
  assert.equal(tokenizer.vocabSize, 266);
  assert.deepEqual(tokenizer.config.merges, [[104, 101], [116, 261], [32, 104], [263, 97], [97, 116]]);
  // " hat": " h" (rank 2) before "at" (rank 4), then " ha"; "t" is left alone.
  assert.deepEqual(tokenizer.encode("the hat"), [262, 264, 116]);
  assert.deepEqual(tokenizer.encode("hat"), [104, 265]);
  assert.deepEqual(tokenizer.encode("that"), [116, 104, 265]);
  assert.deepEqual(tokenizer.encode("<|endoftext|>"), [...new TextEncoder().encode("<|endoftext|>")]);
  assert.ok(notes.some((n) => n.startsWith("ids renumbered")), notes.join("; "));
  assert.ok(notes.some((n) => n.includes(`"<|endoftext|>" (id 261) ignored`)), notes.join("; "));
  assert.ok(notes.some((n) => n.includes("1 vocab entries that no merge makes")), notes.join("; "));
});

Deno.test("a file Hugging Face trained encodes to the tokens Hugging Face gives", async () => {
  // Both fixtures come from Hugging Face `tokenizers` 0.23.2: a ByteLevel BPE trained (vocab 400, special
  // "<|endoftext|>" at id 0, so bytes sit at 1..256) on README.md, and its tokens for each case.
  const { tokenizer, notes } = await loadTokenizerJson(
    new URL("./fixtures/bpe/hf_trained.tokenizer.json", import.meta.url),
  );
  const expected = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/bpe/hf_expected.json", import.meta.url)),
  );
  assert.ok(notes.some((n) => n.startsWith("ids renumbered")), notes.join("; "));
  assert.equal(tokenizer.vocabSize, FIRST_MERGE_ID + 400 - 257, "every merge makes a new token");
  for (const { text, tokens } of expected.cases as { text: string; tokens: string[] }[]) {
    const ids = tokenizer.encode(text);
    assert.deepEqual(ids.map((id) => byteLevelText(tokenizer.bytesOf(id)!)), tokens, JSON.stringify(text));
    assert.equal(tokenizer.decode(ids), text);
  }
});

Deno.test("merges as [left, right] pairs read like 'left right' strings", async () => {
  const file = JSON.parse(await Deno.readTextFile(FIXTURE));
  file.model.merges = file.model.merges.map((m: string) => m.split(" "));
  assert.deepEqual(fromTokenizerJson(file, "pairs").tokenizer.encode("the hat"), [262, 264, 116]);
});

Deno.test("saving then loading gives the same tokenizer", async (t) => {
  const tok = trained();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tokenizer.json`;
  try {
    await Deno.writeTextFile(path, JSON.stringify(toTokenizerJson(tok)));
    const { tokenizer, notes } = await loadTokenizerJson(path);
    await t.step("same config, no notes (the ids are this project's)", () => {
      assert.deepEqual(tokenizer.config, tok.config);
      assert.deepEqual(notes, []);
    });
    await t.step("same encodings", () => {
      for (const text of [...SAMPLES, ...CORPUS]) assert.deepEqual(tokenizer.encode(text), tok.encode(text));
    });
    await t.step("the file's vocab spells every id; specials are added tokens 256..260", () => {
      const file = toTokenizerJson(tok) as {
        model: { vocab: Record<string, number> };
        added_tokens: { id: number }[];
      };
      assert.equal(Object.keys(file.model.vocab).length, tok.vocabSize - 5);
      for (const [text, id] of Object.entries(file.model.vocab)) {
        assert.deepEqual(byteLevelBytes(text), tok.bytesOf(id));
      }
      assert.deepEqual(file.added_tokens.map((a) => a.id), Object.values(SPECIAL));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the byte-level alphabet is GPT-2's", () => {
  assert.equal(byteLevelText([32, 10, 33, 255, 0]), "ĠĊ!ÿĀ");
  assert.deepEqual(byteLevelBytes("ĠĊ!ÿĀ"), [32, 10, 33, 255, 0]);
  assert.equal(byteLevelBytes("a b"), undefined, "a plain space is not in the alphabet");
});

Deno.test("unsupported tokenizer.json parts are refused, naming the key and value", async (t) => {
  const base = JSON.parse(await Deno.readTextFile(FIXTURE));
  // deno-lint-ignore no-explicit-any -- edits reach into the parsed JSON freely
  type Edit = (f: Record<string, any>) => void;
  const cases: [string, Edit, RegExp][] = [
    [
      "model type",
      (f) => f.model.type = "WordPiece",
      /model\.type "WordPiece" is not supported \(only "BPE"\)/,
    ],
    ["normalizer", (f) => f.normalizer = { type: "NFC" }, /normalizer "NFC" is not supported/],
    [
      "pre-tokenizer",
      (f) => f.pre_tokenizer = { type: "Metaspace" },
      /pre_tokenizer "Metaspace" is not supported/,
    ],
    [
      "no pre-tokenizer",
      (f) => f.pre_tokenizer = null,
      /pre_tokenizer null is not supported \(only ByteLevel\)/,
    ],
    [
      "post-processor",
      (f) => f.post_processor = { type: "TemplateProcessing" },
      /post_processor "TemplateProcessing" is not supported .*adds BOS\/EOS itself/,
    ],
    ["decoder", (f) => f.decoder = { type: "WordPiece" }, /decoder "WordPiece" is not supported/],
    ["dropout", (f) => f.model.dropout = 0.1, /model\.dropout 0\.1 is not supported/],
    [
      "subword prefix",
      (f) => f.model.continuing_subword_prefix = "##",
      /continuing_subword_prefix "##" is not supported/,
    ],
    ["byte fallback", (f) => f.model.byte_fallback = true, /model\.byte_fallback true is not supported/],
    ["ignore merges", (f) => f.model.ignore_merges = true, /model\.ignore_merges true is not supported/],
    [
      "non-special added token",
      (f) => f.added_tokens[0].special = false,
      /added_tokens\[0\] "<\|endoftext\|>" is not special/,
    ],
    [
      "a missing byte",
      (f) => delete f.model.vocab["Ġ"],
      /model\.vocab lacks 1 of the 256 byte tokens \(bytes 32\)/,
    ],
    [
      "merge of unknown parts",
      (f) => f.model.merges[0] = "t hx",
      /merges\[0\] "t hx" uses "hx", which is neither/,
    ],
    [
      "merge out of order",
      (f) => f.model.merges.reverse(),
      /merges\[0\] "a t" makes "at"|merges\[1\] "Ġh a" uses "Ġh"/,
    ],
    [
      "merge not in vocab",
      (f) => delete f.model.vocab["he"],
      /merges\[0\] "h e" makes "he", which model\.vocab lacks/,
    ],
    ["malformed merge", (f) => f.model.merges[0] = "h e x", /merges\[0\] "h e x" must be "left right"/],
    ["not a tokenizer", (f) => f.model = "BPE", /model must be an object/],
  ];
  for (const [name, edit, message] of cases) {
    await t.step(name, () => {
      const file = structuredClone(base);
      edit(file);
      assert.throws(() => fromTokenizerJson(file, "my.json"), (e: Error) => {
        assert.ok(e instanceof TokenizerError, `${e.name}: ${e.message}`);
        assert.match(e.message, /^my\.json: /);
        assert.match(e.message, message);
        return true;
      });
    });
  }
  await t.step("a file that is not there, or not JSON", async () => {
    await assert.rejects(loadTokenizerJson("/nonexistent/tok.json"), /\/nonexistent\/tok\.json: cannot read/);
  });
});

Deno.test("encode never produces a special id", () => {
  const tok = trained();
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const pool = [..."aeiou thsrn.,;'\n\t é中🙂👍🏽", "\u{10ffff}", "\u0000", "\u00ff"];
  for (let s = 0; s < 200; s++) {
    const text = Array.from(
      { length: 1 + Math.floor(next() * 40) },
      () => pool[Math.floor(next() * pool.length)]!,
    )
      .join("");
    const ids = tok.encode(text);
    for (const id of ids) {
      assert.ok(!tok.isSpecial(id) && id >= 0 && id < tok.vocabSize, `id ${id} for ${JSON.stringify(text)}`);
    }
    assert.equal(tok.decode(ids), text);
  }
  assert.equal(
    tok.decode([SPECIAL.bos, ...tok.encode("hi"), SPECIAL.eos, SPECIAL.pad]),
    "hi",
    "decode skips specials",
  );
  assert.throws(() => tok.decode([tok.vocabSize]), /id \d+ at position 0 is outside the vocabulary/);
});

Deno.test("a run's tokenizer config rebuilds the tokenizer", async (t) => {
  const tok = trained();
  await t.step("through JSON, as run.json holds it", () => {
    const rebuilt = tokenizerFromConfig(JSON.parse(JSON.stringify(tok.config)));
    assert.equal(rebuilt.vocabSize, tok.vocabSize);
    for (const text of CORPUS) assert.deepEqual(rebuilt.encode(text), tok.encode(text));
  });
  await t.step("a damaged config is refused naming the merge", () => {
    const merges = [...tok.config.merges, [5, 9999] as const];
    assert.throws(
      () => tokenizerFromConfig({ ...tok.config, merges }, "run.json"),
      new RegExp(`run\\.json: merge ${merges.length - 1} \\[5,9999\\] uses 9999`),
    );
    assert.throws(() => tokenizerFromConfig({ kind: "wordpiece" } as never), /kind must be "byte" or "bpe"/);
  });
});

Deno.test("a Transfusion config declares a BPE: vocab is its size, sequences use it", async (t) => {
  const tok = trained();
  const text = { vocab: tok.vocabSize, captionLength: 12, tokenizer: tok.config };
  const image = { size: 8, channels: 1, patch: 2, imagesPerRow: 1 };
  await t.step("the config keeps the tokenizer and accepts the larger vocab", () => {
    const { config } = transfusionConfig({ text, image });
    assert.equal(config.text.vocab, tok.vocabSize);
    assert.deepEqual(config.text.tokenizer, tok.config);
  });
  await t.step("without a tokenizer the key stays out and 260|261 still hold", () => {
    const { config } = transfusionConfig({ image });
    assert.deepEqual(config.text, { vocab: 261, captionLength: 24 });
    assert.throws(
      () => transfusionConfig({ text: { vocab: 300 }, image }),
      /"text\.vocab" = 300: must be 260/,
    );
  });
  await t.step("a vocab that is not the tokenizer's is refused at text.vocab", () => {
    assert.throws(
      () => transfusionConfig({ text: { ...text, vocab: 261 }, image }),
      new RegExp(
        `"text\\.vocab" = 261: must be ${tok.vocabSize}, the vocabulary of text\\.tokenizer \\(bpe\\)`,
      ),
    );
  });
  await t.step("a bad merge is refused at its key", () => {
    const merges = [[97, 98], [300, 97]] as const;
    assert.throws(
      () => transfusionConfig({ text: { vocab: 262, tokenizer: { ...tok.config, merges } }, image }),
      /"text\.tokenizer\.merges\.1" = \[300,97\]: uses 300: a part must be a byte/,
    );
  });
  await t.step("a sampling prompt is measured in tokens, not bytes", () => {
    const { config } = transfusionConfig({ text: { ...text, captionLength: 4 }, image });
    const fits = "the fox";
    assert.ok(tok.encode(fits).length <= 4 && new TextEncoder().encode(fits).length > 4);
    checkCaptionFits(fits, config);
    assert.throws(
      () => checkCaptionFits("the quick brown fox jumps", config),
      /is \d+ tokens of this model's bpe tokenizer, but its caption slot holds 4/,
    );
  });
  await t.step("caption slots hold BPE ids, then EOS, then PAD", () => {
    const { config } = transfusionConfig({ text, image });
    const g = sequenceGeometry(config);
    assert.deepEqual(g.tokenizer.config, tok.config);
    const ids = tok.encode("the fox");
    assert.ok(ids.length < 7);
    const slot = captionIds("the fox", g);
    assert.deepEqual(slot.ids, [...ids, SPECIAL.eos, ...Array(12 - ids.length - 1).fill(SPECIAL.pad)]);
    assert.equal(slot.truncated, 0);
  });
});

Deno.test("examples/text_lm_bpe.ts: the vocab is the tokenizer.json's, and its rows hold BPE ids", async () => {
  const spec = (await import("../examples/text_lm_bpe.ts")).default as AnyModel;
  const { tokenizer } = await loadTokenizerJson(
    new URL("../examples/tokenizers/mnist_captions.json", import.meta.url),
  );
  const traced = trace(spec, { entry: "logits", dims: { batch: 2 } });
  const config = traced.config as { text: { vocab: number; captionLength: number }; seq: number };
  assert.equal(config.text.vocab, tokenizer.vocabSize);
  assert.equal(shapeOf(traced.outputs.logits!), `f32[2, ${config.seq}, ${tokenizer.vocabSize}]`);
  assert.deepEqual(tokenizer.encode("a handwritten digit 7"), [97, 283, 279, 323], "4 tokens for 21 bytes");
  const tokens = spec.data!(traced.config as never, traced.dims).batch(0, 1).tokens as Int32Array;
  const merged = [...tokens].filter((id) => id >= FIRST_MERGE_ID);
  assert.ok(merged.length > 0 && merged.every((id) => id < tokenizer.vocabSize), `tokens ${tokens}`);
});
