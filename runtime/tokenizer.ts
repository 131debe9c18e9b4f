/**
 * Tokenizers behind one interface: the byte-level one (ids 0..255 are UTF-8 bytes, specials follow)
 * and a BPE (bpe.ts: merges after the specials). A run records `config` (a Transfusion config's
 * `text.tokenizer`, or the byte tokenizer its `text.vocab` implies) and every path that needs a
 * tokenizer builds it with `tokenizerFromConfig`, so sampling rebuilds the one training used.
 */
import { BpeTokenizer } from "./bpe.ts";
import {
  type ByteTokenizerConfig,
  decodeIds,
  SPECIAL,
  type Tokenizer,
  type TokenizerConfig,
  TokenizerError,
} from "./tokenizer_base.ts";

export {
  type ByteTokenizerConfig,
  FIRST_MERGE_ID,
  SPECIAL,
  type SpecialName,
  type Tokenizer,
  type TokenizerConfig,
  TokenizerError,
} from "./tokenizer_base.ts";

export interface ByteTokenizerOptions {
  /**
   * With a PAD token (vocab 261, default) or without (vocab 260, padding with EOS), as in the T1
   * benchmark.
   */
  readonly pad?: boolean;
}

export class ByteTokenizer implements Tokenizer {
  readonly config: ByteTokenizerConfig;
  readonly vocabSize: number;
  readonly padId: number;
  readonly #encoder = new TextEncoder();

  constructor(opts: ByteTokenizerOptions = {}) {
    const pad = opts.pad ?? true;
    this.config = { kind: "byte", pad };
    this.vocabSize = pad ? SPECIAL.pad + 1 : SPECIAL.pad;
    this.padId = pad ? SPECIAL.pad : SPECIAL.eos;
  }

  encode(text: string): number[] {
    return Array.from(this.#encoder.encode(text));
  }

  /** Bytes between specials decode on their own, so a special never joins the halves of a character. */
  decode(ids: readonly number[]): string {
    return decodeIds(ids, this.vocabSize, (id) => id < 256 ? [id] : undefined);
  }

  isSpecial(id: number): boolean {
    return id >= 256 && id < this.vocabSize;
  }
}

/** Built tokenizers by config object: sequence assembly asks once per batch, a BPE indexes its merges once. */
const built = new WeakMap<object, Tokenizer>();

/**
 * Rebuilds the tokenizer a run recorded; `where` names the config's origin in messages. A config read
 * back from JSON is checked here (kind, pad, merges), so a damaged run.json fails with its key.
 */
export function tokenizerFromConfig(config: TokenizerConfig, where = "tokenizer config"): Tokenizer {
  const cached = built.get(config);
  if (cached) return cached;
  const c = config as { kind?: unknown; pad?: unknown };
  let tokenizer: Tokenizer;
  if (c.kind === "byte") {
    if (typeof c.pad !== "boolean") {
      throw new TokenizerError(
        `${where}: a byte tokenizer's pad must be true or false, got ${JSON.stringify(c.pad)}`,
      );
    }
    tokenizer = new ByteTokenizer({ pad: c.pad });
  } else if (c.kind === "bpe") {
    tokenizer = new BpeTokenizer(config as never, where);
  } else {
    throw new TokenizerError(`${where}: kind must be "byte" or "bpe", got ${JSON.stringify(c.kind)}`);
  }
  built.set(config, tokenizer);
  return tokenizer;
}

/** What a model's text config says about its tokenizer (a Transfusion config's `text`). */
export interface TextTokenizerConfig {
  readonly vocab: number;
  /** Absent: the byte tokenizer, with PAD at vocab 261, without at 260. */
  readonly tokenizer?: TokenizerConfig | undefined;
}

/** Why `text.vocab` does not fit the declared tokenizer, or undefined when it does. */
export function vocabMismatch(text: TextTokenizerConfig): string | undefined {
  if (text.tokenizer === undefined) {
    return text.vocab === SPECIAL.pad || text.vocab === SPECIAL.pad + 1
      ? undefined
      : "must be 260 (EOS pads) or 261 (PAD token), or text.tokenizer's vocabulary when one is given";
  }
  const size = tokenizerFromConfig(text.tokenizer, "text.tokenizer").vocabSize;
  return text.vocab === size
    ? undefined
    : `must be ${size}, the vocabulary of text.tokenizer (${text.tokenizer.kind})`;
}

/** The tokenizer of a model's text config; `where` names the config in messages. */
export function textTokenizer(text: TextTokenizerConfig, where = "config"): Tokenizer {
  const problem = vocabMismatch(text);
  if (problem) throw new TokenizerError(`${where}: text.vocab ${problem}; got ${text.vocab}`);
  return tokenizerFromConfig(
    text.tokenizer ?? { kind: "byte", pad: text.vocab === SPECIAL.pad + 1 },
    `${where} text.tokenizer`,
  );
}

/** `ids` cut or filled with `tokenizer.padId` to exactly `length` (T1's fixed-length captions). */
export function fitLength(tokenizer: Tokenizer, ids: readonly number[], length: number): number[] {
  if (!Number.isInteger(length) || length < 0) {
    throw new TokenizerError(`fitLength: length ${length} must be >= 0`);
  }
  const out = ids.slice(0, length);
  while (out.length < length) out.push(tokenizer.padId);
  return out;
}
