/**
 * Training a byte-level BPE on a corpus. Deterministic: the same texts (in any order) and options give
 * the same merges.
 *
 * The corpus is cut into pieces (bpe.ts `splitPieces`), counted, and each distinct piece starts as its
 * bytes. Then, until the vocabulary reaches `vocab` ids: the adjacent pair seen most often (counting
 * each piece as often as it occurs) becomes a merge; ties go to the smaller left id, then the smaller
 * right id. A pair seen fewer than `minFrequency` times is not worth an id, so training may stop short
 * of the target (the tokenizer's `vocabSize` says where). Pair counts are kept up to date per piece
 * that holds the merged pair, so one merge costs the pieces it touches, not the corpus.
 */
import { type BpeSplit, BpeTokenizer, pairKey, pairOfKey, splitPieces } from "./bpe.ts";
import { FIRST_MERGE_ID, TokenizerError } from "./tokenizer_base.ts";

export interface BpeTrainOptions {
  /** Target vocabulary size, specials included: at least 261 (bytes and specials, no merges). */
  readonly vocab: number;
  /** Fewest occurrences of a pair to merge it (default 2). */
  readonly minFrequency?: number;
  /** Pre-tokenizer (default "gpt2": merges stay inside words). */
  readonly split?: BpeSplit;
}

export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): BpeTokenizer {
  const minFrequency = opts.minFrequency ?? 2;
  const split = opts.split ?? "gpt2";
  if (!Number.isInteger(opts.vocab) || opts.vocab < FIRST_MERGE_ID || opts.vocab > 2 ** 21) {
    throw new TokenizerError(
      `trainBpe: vocab ${opts.vocab} must be an integer in [${FIRST_MERGE_ID}, ${2 ** 21}] ` +
        `(256 bytes + 5 specials, then merges)`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new TokenizerError(`trainBpe: minFrequency ${minFrequency} must be an integer >= 1`);
  }
  const { words, counts } = countPieces(texts, split);
  const pairs = new PairCounts(words, counts);
  const tokenBytes: string[] = []; // bytes of each merged id, as a key ("104,105")
  const idOfBytes = new Map<string, number>();
  const bytesKey = (id: number) => id < 256 ? String(id) : tokenBytes[id - FIRST_MERGE_ID]!;
  const merges: [number, number][] = [];
  while (FIRST_MERGE_ID + tokenBytes.length < opts.vocab) {
    const best = pairs.best();
    if (!best || best.count < minFrequency) break;
    const [left, right] = pairOfKey(best.key);
    const joined = `${bytesKey(left)},${bytesKey(right)}`;
    let id = idOfBytes.get(joined);
    if (id === undefined) {
      id = FIRST_MERGE_ID + tokenBytes.length;
      tokenBytes.push(joined);
      idOfBytes.set(joined, id);
    }
    merges.push([left, right]);
    pairs.merge(best.key, id);
  }
  return new BpeTokenizer({ kind: "bpe", split, addPrefixSpace: false, merges }, "trainBpe");
}

/** Distinct pieces as byte ids, and how often each occurs. */
function countPieces(texts: Iterable<string>, split: BpeSplit): { words: number[][]; counts: number[] } {
  const seen = new Map<string, number>();
  for (const text of texts) {
    for (const piece of splitPieces(text, split)) seen.set(piece, (seen.get(piece) ?? 0) + 1);
  }
  const encoder = new TextEncoder();
  const words: number[][] = [], counts: number[] = [];
  for (const [piece, count] of seen) {
    words.push(Array.from(encoder.encode(piece)));
    counts.push(count);
  }
  return { words, counts };
}

/** Occurrences of every adjacent pair over all pieces, and which pieces may hold each pair. */
class PairCounts {
  readonly #count = new Map<number, number>();
  /** Pieces that held the pair when it was counted (some may no longer: checked on merge). */
  readonly #where = new Map<number, Set<number>>();

  constructor(readonly words: number[][], readonly counts: readonly number[]) {
    words.forEach((_, w) => this.#add(w, +1));
  }

  /** The most frequent pair; ties to the smaller key, i.e. the smaller (left, right). */
  best(): { key: number; count: number } | undefined {
    let best: { key: number; count: number } | undefined;
    for (const [key, count] of this.#count) {
      if (!best || count > best.count || (count === best.count && key < best.key)) best = { key, count };
    }
    return best;
  }

  /** Replaces every occurrence of the pair `key` by `id`, in every piece that holds it. */
  merge(key: number, id: number) {
    for (const w of this.#where.get(key) ?? []) {
      const word = this.words[w]!;
      let holds = false;
      for (let i = 0; i + 1 < word.length && !holds; i++) holds = pairKey(word[i]!, word[i + 1]!) === key;
      if (!holds) continue;
      this.#add(w, -1);
      const next: number[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && pairKey(word[i]!, word[i + 1]!) === key) {
          next.push(id);
          i++;
        } else next.push(word[i]!);
      }
      this.words[w] = next;
      this.#add(w, +1);
    }
    this.#where.delete(key);
    this.#count.delete(key);
  }

  /** Adds (or with -1 removes) the pairs of piece `w`, weighted by its count. */
  #add(w: number, sign: 1 | -1) {
    const word = this.words[w]!;
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i]!, word[i + 1]!);
      const count = (this.#count.get(key) ?? 0) + sign * this.counts[w]!;
      if (count === 0) this.#count.delete(key);
      else this.#count.set(key, count);
      if (sign > 0) {
        let set = this.#where.get(key);
        if (!set) this.#where.set(key, set = new Set());
        set.add(w);
      }
    }
  }
}
