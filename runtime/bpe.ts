/**
 * A byte-level BPE tokenizer. Ids: 0..255 are UTF-8 bytes, 256..260 the shared specials (BOS, EOS,
 * BOI, EOI, PAD), then one id per token the merges make, from 261 on. Trained by bpe_train.ts, read
 * and written as a Hugging Face tokenizer.json by bpe_json.ts.
 *
 * Pre-tokenization: text is first cut into pieces and merges never cross a piece boundary. "gpt2" is
 * GPT-2's byte-level pattern (contractions 's 't 're 've 'm 'll 'd; a word with the one space before
 * it; a number; a run of punctuation with one space before it; whitespace runs, the last space of a
 * run before a word going with the word), with Unicode White_Space for `\s` as Oniguruma has it.
 * "none": the whole text is one piece. Each piece is split into its UTF-8 bytes, then the pair of
 * adjacent tokens with the earliest merge is joined (every occurrence, left to right) until no
 * adjacent pair has a merge: the same result as GPT-2 and Hugging Face `tokenizers`.
 */
import { decodeIds, FIRST_MERGE_ID, SPECIAL, type Tokenizer, TokenizerError } from "./tokenizer_base.ts";

/** How a BPE tokenizer is rebuilt: JSON, recorded in run.json (so a run needs no tokenizer file). */
export interface BpeConfig {
  readonly kind: "bpe";
  /** Pre-tokenizer (see the file comment). */
  readonly split: BpeSplit;
  /** A space put before text that does not start with one (tokenizer.json's `add_prefix_space`). */
  readonly addPrefixSpace: boolean;
  /**
   * Merge k joins the adjacent tokens [left, right]. Each new byte string gets the next id from 261 on;
   * a merge whose bytes some earlier token already has gives that token's id. Left and right must be
   * bytes or tokens of earlier merges.
   */
  readonly merges: readonly (readonly [number, number])[];
}
export type BpeSplit = "gpt2" | "none";
export const BPE_SPLITS: readonly BpeSplit[] = ["gpt2", "none"];

/** Ids stay below this, so a pair packs into one number `left * MAX_IDS + right`. */
const MAX_IDS = 2 ** 21;
export const pairKey = (left: number, right: number) => left * MAX_IDS + right;
export const pairOfKey = (key: number): [number, number] => [Math.floor(key / MAX_IDS), key % MAX_IDS];

const GPT2_PIECE =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** The pieces merges stay inside; their concatenation is `text`. */
export function splitPieces(text: string, split: BpeSplit): string[] {
  if (text === "") return [];
  return split === "none" ? [text] : text.match(GPT2_PIECE) ?? [];
}

/** The merge table of a config: bytes of every id and, per pair, its rank and the id it makes. */
export interface MergeTable {
  /** Bytes of each id; undefined for the specials. */
  readonly bytes: readonly (readonly number[] | undefined)[];
  readonly pairs: ReadonlyMap<number, { readonly rank: number; readonly id: number }>;
}

/** Bytes of the ids 0..260: one byte each, then the specials (no bytes). */
function baseBytes(): (readonly number[] | undefined)[] {
  const bytes: (readonly number[] | undefined)[] = [];
  for (let b = 0; b < 256; b++) bytes.push([b]);
  for (let id = 256; id < FIRST_MERGE_ID; id++) bytes.push(undefined);
  return bytes;
}

/** A merge that cannot be indexed: which one (`merge`, its position) and why, for a config's key path. */
export class BpeMergeError extends TokenizerError {
  constructor(where: string, readonly merge: number, readonly pair: unknown, readonly why: string) {
    super(`${where}: merge ${merge} ${JSON.stringify(pair)} ${why}`);
  }
}

/** Checks and indexes `merges`; every message names the merge and the ids seen. */
export function mergeTable(merges: unknown, where: string): MergeTable {
  if (!Array.isArray(merges)) {
    throw new TokenizerError(`${where}: merges must be a list of [left, right] ids`);
  }
  const bytes = baseBytes();
  const idOfBytes = new Map<string, number>();
  const pairs = new Map<number, { rank: number; id: number }>();
  merges.forEach((m: unknown, rank) => {
    const bad = (why: string) => {
      throw new BpeMergeError(where, rank, m, why);
    };
    if (!Array.isArray(m) || m.length !== 2) bad("must be a pair [left, right] of ids");
    const [left, right] = m as unknown[];
    for (const part of [left, right]) {
      if (typeof part !== "number" || !Number.isInteger(part) || part < 0 || part >= bytes.length) {
        bad(
          `uses ${part}: a part must be a byte (0..255) or a token of an earlier merge (261..${
            bytes.length - 1
          })`,
        );
      }
      if (bytes[part as number] === undefined) bad(`uses the special id ${part}`);
    }
    const key = pairKey(left as number, right as number);
    const earlier = pairs.get(key);
    if (earlier) bad(`repeats merge ${earlier.rank}`);
    const joined = [...bytes[left as number]!, ...bytes[right as number]!];
    const text = joined.join(",");
    let id = idOfBytes.get(text);
    if (id === undefined) {
      id = bytes.length;
      if (id >= MAX_IDS) bad(`would make id ${id}; at most ${MAX_IDS} ids are supported`);
      bytes.push(joined);
      idOfBytes.set(text, id);
    }
    pairs.set(key, { rank, id });
  });
  return { bytes, pairs };
}

/** Joins the earliest-merged adjacent pair of `ids` (all its occurrences) until none has a merge. */
export function applyMerges(ids: number[], pairs: MergeTable["pairs"]): number[] {
  let word = ids;
  while (word.length > 1) {
    let best: { rank: number; id: number } | undefined;
    let bestKey = 0;
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i]!, word[i + 1]!);
      const merge = pairs.get(key);
      if (merge && (!best || merge.rank < best.rank)) [best, bestKey] = [merge, key];
    }
    if (!best) break;
    const next: number[] = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && pairKey(word[i]!, word[i + 1]!) === bestKey) {
        next.push(best.id);
        i++;
      } else next.push(word[i]!);
    }
    word = next;
  }
  return word;
}

/** Pieces seen often (words) are cached; the cache starts over when it holds this many. */
const CACHE_LIMIT = 1 << 14;

export class BpeTokenizer implements Tokenizer {
  readonly config: BpeConfig;
  readonly vocabSize: number;
  readonly padId = SPECIAL.pad;
  readonly #table: MergeTable;
  readonly #encoder = new TextEncoder();
  readonly #cache = new Map<string, readonly number[]>();

  /** `where` names the config's origin in messages (a run.json, a tokenizer.json, a spec). */
  constructor(config: BpeConfig, where = "bpe tokenizer config") {
    const c = config as Partial<Record<keyof BpeConfig, unknown>>;
    if (c.kind !== "bpe") {
      throw new TokenizerError(`${where}: kind must be "bpe", got ${JSON.stringify(c.kind)}`);
    }
    if (!BPE_SPLITS.includes(c.split as BpeSplit)) {
      throw new TokenizerError(
        `${where}: split must be one of ${BPE_SPLITS.map((s) => `"${s}"`).join(", ")}, got ${
          JSON.stringify(c.split)
        }`,
      );
    }
    if (typeof c.addPrefixSpace !== "boolean") {
      throw new TokenizerError(
        `${where}: addPrefixSpace must be true or false, got ${JSON.stringify(c.addPrefixSpace)}`,
      );
    }
    this.#table = mergeTable(c.merges, where);
    this.config = config;
    this.vocabSize = this.#table.bytes.length;
  }

  /** Bytes of a token id (undefined for a special), for inspection and saving. */
  bytesOf(id: number): readonly number[] | undefined {
    return this.#table.bytes[id];
  }

  encode(text: string): number[] {
    const prefixed = this.config.addPrefixSpace && text !== "" && !text.startsWith(" ") ? ` ${text}` : text;
    const out: number[] = [];
    for (const piece of splitPieces(prefixed, this.config.split)) {
      let ids = this.#cache.get(piece);
      if (!ids) {
        ids = applyMerges(Array.from(this.#encoder.encode(piece)), this.#table.pairs);
        if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
        this.#cache.set(piece, ids);
      }
      out.push(...ids);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return decodeIds(ids, this.vocabSize, (id) => this.#table.bytes[id]);
  }

  isSpecial(id: number): boolean {
    return id >= SPECIAL.bos && id <= SPECIAL.pad;
  }
}
