import assert from "node:assert/strict";
import {
  ByteTokenizer,
  fitLength,
  SPECIAL,
  type Tokenizer,
  TokenizerError,
  tokenizerFromConfig,
} from "../runtime/tokenizer.ts";

Deno.test("byte tokenizer vocabulary and specials", async (t) => {
  await t.step("specials follow the 256 bytes", () => {
    assert.deepEqual(SPECIAL, { bos: 256, eos: 257, boi: 258, eoi: 259, pad: 260 });
  });
  await t.step("with PAD: 261 ids, pads with PAD", () => {
    const tok = new ByteTokenizer();
    assert.equal(tok.vocabSize, 261);
    assert.equal(tok.padId, SPECIAL.pad);
    assert.ok(tok.isSpecial(SPECIAL.pad) && tok.isSpecial(SPECIAL.bos) && !tok.isSpecial(255));
  });
  await t.step("T1 (no PAD): 260 ids, pads with EOS", () => {
    const tok = new ByteTokenizer({ pad: false });
    assert.equal(tok.vocabSize, 260);
    assert.equal(tok.padId, SPECIAL.eos);
    assert.ok(!tok.isSpecial(SPECIAL.pad));
  });
});

Deno.test("encode gives UTF-8 bytes and decode inverts it", async (t) => {
  const tok = new ByteTokenizer();
  await t.step("known UTF-8 encodings", () => {
    assert.deepEqual(tok.encode("a 7"), [0x61, 0x20, 0x37]);
    assert.deepEqual(tok.encode("é"), [0xc3, 0xa9]); // U+00E9
    assert.deepEqual(tok.encode("€"), [0xe2, 0x82, 0xac]); // U+20AC
    assert.deepEqual(tok.encode("🙂"), [0xf0, 0x9f, 0x99, 0x82]); // U+1F642
    assert.deepEqual(tok.encode(""), []);
  });
  await t.step("round trips", () => {
    for (
      const text of ["", "a handwritten digit 7", "héllo wörld 数字 🙂", "\uFEFFbom", "tab\tnew\nline\0nul"]
    ) {
      const ids = tok.encode(text);
      assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 256));
      assert.equal(tok.decode(ids), text);
    }
  });
});

Deno.test("decode skips specials and replaces invalid UTF-8", async (t) => {
  const tok = new ByteTokenizer();
  const hi = tok.encode("hi");
  await t.step("specials anywhere are dropped", () => {
    assert.equal(
      tok.decode([SPECIAL.bos, ...hi, SPECIAL.boi, SPECIAL.eoi, ...hi, SPECIAL.eos, SPECIAL.pad]),
      "hihi",
    );
  });
  await t.step("invalid bytes become U+FFFD", () => {
    assert.equal(tok.decode([0x61, 0xff, 0x62]), "a\uFFFDb");
    assert.equal(tok.decode([0xe2, 0x82]), "\uFFFD"); // a truncated 3-byte sequence
  });
  await t.step("a special inside a character splits it", () => {
    assert.equal(tok.decode([0xc3, SPECIAL.eos, 0xa9]), "\uFFFD\uFFFD");
  });
  await t.step("ids outside the vocabulary are an error", () => {
    assert.throws(
      () => tok.decode([0x61, 261]),
      (e: unknown) =>
        e instanceof TokenizerError &&
        e.message === "decode: id 261 at position 1 is outside the vocabulary 0..260",
    );
    assert.throws(
      () => new ByteTokenizer({ pad: false }).decode([SPECIAL.pad]),
      /id 260 at position 0 .*0\.\.259/,
    );
    assert.throws(() => tok.decode([1.5]), TokenizerError);
    assert.throws(() => tok.decode([-1]), TokenizerError);
  });
});

Deno.test("fitLength pads or truncates to the T1 caption length", () => {
  const tok = new ByteTokenizer({ pad: false });
  const caption = tok.encode("a handwritten digit 7");
  const fitted = fitLength(tok, caption, 24);
  assert.equal(fitted.length, 24);
  assert.deepEqual(fitted.slice(0, caption.length), caption);
  assert.deepEqual(fitted.slice(caption.length), Array(24 - caption.length).fill(SPECIAL.eos));
  assert.equal(tok.decode(fitted), "a handwritten digit 7");
  assert.deepEqual(fitLength(tok, tok.encode("abcdef"), 4), tok.encode("abcd"));
  assert.deepEqual(fitLength(new ByteTokenizer(), [1], 3), [1, SPECIAL.pad, SPECIAL.pad]);
  assert.throws(() => fitLength(tok, caption, -1), TokenizerError);
});

Deno.test("a tokenizer is rebuilt from the config a run records", () => {
  for (const pad of [true, false]) {
    const original: Tokenizer = new ByteTokenizer({ pad });
    const rebuilt = tokenizerFromConfig(JSON.parse(JSON.stringify(original.config)));
    assert.equal(rebuilt.vocabSize, original.vocabSize);
    assert.equal(rebuilt.padId, original.padId);
    assert.deepEqual(rebuilt.encode("digit 3"), original.encode("digit 3"));
  }
});
