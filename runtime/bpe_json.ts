/**
 * BPE tokenizers as Hugging Face `tokenizers` files (tokenizer.json), byte-level BPE only.
 *
 * Supported, key by key (anything else is refused with a TokenizerError naming the key and value):
 * - model: type "BPE"; vocab (token -> id) and merges ("left right" strings or [left, right] pairs),
 *   tokens written in the byte-level alphabet (GPT-2's bytes_to_unicode: "Ġ" is the space byte).
 *   Every one of the 256 bytes must be in vocab, and every merge's parts must be bytes or tokens made
 *   by earlier merges (trained files are in that order). dropout null or 0; continuing_subword_prefix
 *   and end_of_word_suffix null or ""; byte_fallback and ignore_merges false or absent. unk_token and
 *   fuse_unk are accepted and unused: every byte is in the alphabet, so nothing is unknown.
 * - pre_tokenizer: ByteLevel with add_prefix_space (true/false) and use_regex (true: GPT-2's pattern;
 *   false: no split); trim_offsets is about offsets and ignored. Not Split, Sequence, Whitespace, Metaspace.
 * - normalizer: null only. decoder: ByteLevel or null (decoding is always byte-level).
 *   post_processor: null or ByteLevel (offsets only); TemplateProcessing and the rest add specials
 *   around the text, which this project does itself (BOS/EOS/BOI/EOI), so they are refused.
 * - added_tokens: special ones are accepted and never matched in the text (encode produces no
 *   specials); this project's own five (`<|bos|>` ... `<|pad|>`) keep ids 256..260. A non-special
 *   added token would be matched in the text before BPE, which is not supported.
 * - truncation, padding, version: ignored (captions are cut and padded by `fitLength`).
 *
 * Ids follow this project's layout whatever the file says: byte b is id b, the specials 256..260, the
 * merges' tokens 261, 262, ... in merge order. A file this project wrote has exactly these ids; for
 * another file (GPT-2's, say) the ids are renumbered and vocab entries no merge makes are dropped,
 * which `notes` says. The encoding is otherwise the same token sequence the file's tokenizer gives.
 */
import { BpeTokenizer } from "./bpe.ts";
import { FIRST_MERGE_ID, SPECIAL, type SpecialName, TokenizerError } from "./tokenizer_base.ts";

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest from U+0100 on. */
function byteAlphabet(): { charOf: string[]; byteOf: Map<string, number> } {
  const charOf: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    charOf.push(String.fromCodePoint(printable ? b : next++));
  }
  return { charOf, byteOf: new Map(charOf.map((c, b) => [c, b])) };
}
const ALPHABET = byteAlphabet();

/** A token's byte-level spelling ("Ġthe"). */
export function byteLevelText(bytes: readonly number[]): string {
  return bytes.map((b) => ALPHABET.charOf[b]!).join("");
}

/** The bytes a byte-level spelling stands for; undefined if a character is outside the alphabet. */
export function byteLevelBytes(text: string): number[] | undefined {
  const bytes: number[] = [];
  for (const ch of text) {
    const b = ALPHABET.byteOf.get(ch);
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  return bytes;
}

export const SPECIAL_CONTENT: Record<SpecialName, string> = {
  bos: "<|bos|>",
  eos: "<|eos|>",
  boi: "<|boi|>",
  eoi: "<|eoi|>",
  pad: "<|pad|>",
};

/** The tokenizer as a tokenizer.json that Hugging Face `tokenizers` loads with the same ids. */
export function toTokenizerJson(tokenizer: BpeTokenizer): Record<string, unknown> {
  const { config } = tokenizer;
  const vocab: Record<string, number> = {};
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const bytes = tokenizer.bytesOf(id);
    if (bytes) vocab[byteLevelText(bytes)] = id;
  }
  const spell = (id: number) => byteLevelText(tokenizer.bytesOf(id)!);
  const byteLevel = { type: "ByteLevel", add_prefix_space: config.addPrefixSpace, trim_offsets: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: (Object.keys(SPECIAL) as SpecialName[]).map((name) => ({
      id: SPECIAL[name],
      content: SPECIAL_CONTENT[name],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { ...byteLevel, use_regex: config.split === "gpt2" },
    post_processor: null,
    decoder: { ...byteLevel, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: config.merges.map(([l, r]) => `${spell(l)} ${spell(r)}`),
    },
  };
}

export interface LoadedTokenizer {
  readonly tokenizer: BpeTokenizer;
  /** What the file had that this project does differently (renumbered ids, ignored added tokens). */
  readonly notes: readonly string[];
}

type Json = Record<string, unknown>;
const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);
const show = (x: unknown) => JSON.stringify(x) ?? String(x);

/** Reads a parsed tokenizer.json; `source` (its path) is named in every message. */
export function fromTokenizerJson(file: unknown, source: string): LoadedTokenizer {
  const fail = (key: string, why: string): never => {
    throw new TokenizerError(`${source}: ${key} ${why}`);
  };
  if (!isObject(file)) fail("(top level)", "must be a JSON object (a Hugging Face tokenizer.json)");
  const f = file as Json;
  const notes: string[] = [];
  if (f.normalizer !== null && f.normalizer !== undefined) {
    fail("normalizer", `${show(typeOf(f.normalizer))} is not supported (only null)`);
  }
  const pre = f.pre_tokenizer;
  if (!isObject(pre) || pre.type !== "ByteLevel") {
    fail("pre_tokenizer", `${show(isObject(pre) ? pre.type : pre)} is not supported (only ByteLevel)`);
  }
  const p = pre as Json;
  const addPrefixSpace = p.add_prefix_space ?? false;
  const useRegex = p.use_regex ?? true;
  if (typeof addPrefixSpace !== "boolean") {
    fail("pre_tokenizer.add_prefix_space", `must be a boolean, got ${show(addPrefixSpace)}`);
  }
  if (typeof useRegex !== "boolean") {
    fail("pre_tokenizer.use_regex", `must be a boolean, got ${show(useRegex)}`);
  }
  if (f.decoder !== null && f.decoder !== undefined && typeOf(f.decoder) !== "ByteLevel") {
    fail("decoder", `${show(typeOf(f.decoder))} is not supported (only ByteLevel or null)`);
  }
  if (
    f.post_processor !== null && f.post_processor !== undefined && typeOf(f.post_processor) !== "ByteLevel"
  ) {
    fail(
      "post_processor",
      `${
        show(typeOf(f.post_processor))
      } is not supported (only ByteLevel or null: this project adds BOS/EOS itself)`,
    );
  }
  checkAddedTokens(f.added_tokens, fail, notes);
  const merges = readModel(f.model, fail, notes);
  const tokenizer = new BpeTokenizer(
    { kind: "bpe", split: useRegex ? "gpt2" : "none", addPrefixSpace: addPrefixSpace as boolean, merges },
    source,
  );
  return { tokenizer, notes };
}

const typeOf = (x: unknown) => isObject(x) ? x.type : x;

type Fail = (key: string, why: string) => never;

function checkAddedTokens(added: unknown, fail: Fail, notes: string[]) {
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) fail("added_tokens", "must be a list");
  const ours = new Map(
    Object.entries(SPECIAL_CONTENT).map(([name, content]) => [content, name as SpecialName]),
  );
  (added as unknown[]).forEach((t, i) => {
    if (!isObject(t) || typeof t.content !== "string") {
      fail(`added_tokens[${i}]`, "must be an object with a content string");
    }
    const token = t as Json;
    if (token.special !== true) {
      fail(
        `added_tokens[${i}] ${show(token.content)}`,
        "is not special: added tokens matched in the text before BPE are not supported",
      );
    }
    const name = ours.get(token.content as string);
    if (name === undefined) {
      notes.push(
        `added token ${show(token.content)} (id ${
          show(token.id)
        }) ignored: this project's specials are 256..260`,
      );
    } else if (token.id !== SPECIAL[name]) {
      notes.push(
        `added token ${show(token.content)} has id ${show(token.id)} in the file; here it is ${
          SPECIAL[name]
        }`,
      );
    }
  });
}

/** The model's merges as id pairs in this project's layout, after checking every model key. */
function readModel(model: unknown, fail: Fail, notes: string[]): [number, number][] {
  if (!isObject(model)) fail("model", "must be an object");
  const m = model as Json;
  if (m.type !== "BPE") fail("model.type", `${show(m.type)} is not supported (only "BPE")`);
  if (m.dropout !== null && m.dropout !== undefined && m.dropout !== 0) {
    fail("model.dropout", `${show(m.dropout)} is not supported (BPE dropout is random; only null or 0)`);
  }
  for (const key of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    if (m[key] !== null && m[key] !== undefined && m[key] !== "") {
      fail(
        `model.${key}`,
        `${show(m[key])} is not supported (only null or "": byte-level BPE has no word markers)`,
      );
    }
  }
  for (const key of ["byte_fallback", "ignore_merges"]) {
    if (m[key] !== undefined && m[key] !== false) {
      fail(`model.${key}`, `${show(m[key])} is not supported (only false)`);
    }
  }
  if (!isObject(m.vocab)) fail("model.vocab", "must be an object of token -> id");
  const vocab = m.vocab as Json;
  const missing = ALPHABET.charOf.flatMap((ch, b) => ch in vocab ? [] : [b]);
  if (missing.length > 0) {
    fail(
      "model.vocab",
      `lacks ${missing.length} of the 256 byte tokens (bytes ${missing.slice(0, 8).join(", ")}` +
        `${missing.length > 8 ? ", ..." : ""}): a byte-level BPE needs every byte`,
    );
  }
  if (!Array.isArray(m.merges)) fail("model.merges", "must be a list");
  const idOf = new Map<string, number>(ALPHABET.charOf.map((ch, b) => [ch, b]));
  let renumbered = ALPHABET.charOf.some((ch, b) => vocab[ch] !== b);
  const merges = (m.merges as unknown[]).map((entry, k): [number, number] => {
    const at = `model.merges[${k}] ${show(entry)}`;
    const parts = typeof entry === "string" ? entry.split(" ") : entry;
    if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((x) => typeof x === "string")) {
      fail(at, `must be "left right" or ["left", "right"]`);
    }
    const [left, right] = parts as [string, string];
    for (const part of [left, right]) {
      if (byteLevelBytes(part) === undefined) {
        fail(at, `has ${show(part)}, which is not in the byte-level alphabet`);
      }
      if (!idOf.has(part)) {
        fail(at, `uses ${show(part)}, which is neither a byte nor made by an earlier merge`);
      }
    }
    const joined = left + right;
    if (!(joined in vocab)) fail(at, `makes ${show(joined)}, which model.vocab lacks`);
    if (!idOf.has(joined)) idOf.set(joined, FIRST_MERGE_ID + idOf.size - 256);
    if (vocab[joined] !== idOf.get(joined)) renumbered = true;
    return [idOf.get(left)!, idOf.get(right)!];
  });
  const dropped = Object.keys(vocab).filter((token) => !idOf.has(token)).length;
  if (renumbered) {
    notes.push("ids renumbered: bytes 0..255, specials 256..260, merged tokens from 261 in merge order");
  }
  if (dropped > 0) {
    notes.push(`${dropped} vocab entries that no merge makes were dropped (unreachable by encode)`);
  }
  return merges;
}

/** Reads and checks a tokenizer.json file. */
export async function loadTokenizerJson(file: string | URL): Promise<LoadedTokenizer> {
  const path = file instanceof URL && file.protocol === "file:"
    ? decodeURIComponent(file.pathname)
    : String(file);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new TokenizerError(`${path}: cannot read the tokenizer file (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: not JSON (${(e as Error).message})`);
  }
  return fromTokenizerJson(parsed, path);
}

/** Writes the tokenizer as tokenizer.json (two-space indents, one merge per line, as `deno fmt` leaves it). */
export async function saveTokenizerJson(path: string, tokenizer: BpeTokenizer): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(toTokenizerJson(tokenizer), null, 2) + "\n");
}
