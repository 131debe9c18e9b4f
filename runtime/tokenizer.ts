/**
 * Tokenizers behind one interface: the byte-level one now (ids 0..255 are UTF-8 bytes, specials
 * follow), a trained BPE later. A run records `config` so sampling rebuilds the same tokenizer.
 */

/** Special token ids, shared by every tokenizer (a BPE puts its merges after them). */
export const SPECIAL = { bos: 256, eos: 257, boi: 258, eoi: 259, pad: 260 } as const;
export type SpecialName = keyof typeof SPECIAL;

/** How to rebuild a tokenizer; JSON, for run.json. A BPE adds its own kind with its merges. */
export type TokenizerConfig = { readonly kind: "byte"; readonly pad: boolean };

export interface Tokenizer {
  readonly config: TokenizerConfig;
  readonly vocabSize: number;
  /** Id used to fill sequences to a fixed length: PAD, or EOS when the vocabulary has no PAD. */
  readonly padId: number;
  /** Text to ids, without specials. */
  encode(text: string): number[];
  /** Ids to text; specials are skipped and bytes that are not valid UTF-8 become U+FFFD. */
  decode(ids: readonly number[]): string;
  isSpecial(id: number): boolean;
}

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

export interface ByteTokenizerOptions {
  /**
   * With a PAD token (vocab 261, default) or without (vocab 260, padding with EOS), as in the T1
   * benchmark.
   */
  readonly pad?: boolean;
}

export class ByteTokenizer implements Tokenizer {
  readonly config: TokenizerConfig;
  readonly vocabSize: number;
  readonly padId: number;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

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
    let text = "";
    let run: number[] = [];
    const flush = () => {
      text += this.#decoder.decode(Uint8Array.from(run));
      run = [];
    };
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(
          `decode: id ${id} at position ${i} is outside the vocabulary 0..${this.vocabSize - 1}`,
        );
      }
      if (id < 256) run.push(id);
      else flush();
    });
    flush();
    return text;
  }

  isSpecial(id: number): boolean {
    return id >= 256 && id < this.vocabSize;
  }
}

/** Rebuilds the tokenizer a run recorded. */
export function tokenizerFromConfig(config: TokenizerConfig): Tokenizer {
  return new ByteTokenizer({ pad: config.pad });
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
