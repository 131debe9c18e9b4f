/**
 * What every tokenizer shares: the special ids, the interface, the error, and decoding bytes between
 * specials. Its own file so the byte tokenizer (tokenizer.ts) and the BPE (bpe.ts) import it without a
 * cycle; tokenizer.ts re-exports all of it.
 */
import type { BpeConfig } from "./bpe.ts";

/** Special token ids, shared by every tokenizer (a BPE puts its merges after them). */
export const SPECIAL = { bos: 256, eos: 257, boi: 258, eoi: 259, pad: 260 } as const;
export type SpecialName = keyof typeof SPECIAL;
/** The first id after the bytes and the specials: a BPE's first merge. */
export const FIRST_MERGE_ID = SPECIAL.pad + 1;

export type ByteTokenizerConfig = { readonly kind: "byte"; readonly pad: boolean };
/** How to rebuild a tokenizer; JSON, for run.json (a Transfusion config holds it as `text.tokenizer`). */
export type TokenizerConfig = ByteTokenizerConfig | BpeConfig;

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

/**
 * Text of `ids`, each id's bytes given by `bytesOf` (undefined: a special, skipped). Bytes between
 * specials decode on their own, so a special never joins the halves of a character.
 */
export function decodeIds(
  ids: readonly number[],
  vocabSize: number,
  bytesOf: (id: number) => readonly number[] | undefined,
): string {
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  let text = "";
  let run: number[] = [];
  const flush = () => {
    text += decoder.decode(Uint8Array.from(run));
    run = [];
  };
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new TokenizerError(
        `decode: id ${id} at position ${i} is outside the vocabulary 0..${vocabSize - 1}`,
      );
    }
    const bytes = bytesOf(id);
    if (bytes === undefined) flush();
    else for (const b of bytes) run.push(b);
  });
  flush();
  return text;
}
