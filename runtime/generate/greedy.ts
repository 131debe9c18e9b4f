/**
 * Greedy text decoding over an uncached model call: every new token re-runs the whole batch with
 * the tokens generated so far (no KV cache yet). The call returns, per row, the scores of the next
 * token; the decoder takes the argmax, stops a row at a stop token or at the budget, and stops
 * calling once every row is done.
 */

/** Next-token scores [rows, vocab] for rows that hold `generated[b]` so far. */
export type NextTokenScores = (generated: readonly (readonly number[])[]) => Promise<Float32Array>;

export interface GreedyOptions {
  readonly rows: number;
  readonly vocab: number;
  /** At most this many tokens per row. */
  readonly budget: number;
  /** A token that ends its row; it is not part of the result. */
  readonly stop: (id: number) => boolean;
}

/** The generated ids of each row, without the stop token. */
export async function greedyDecode(next: NextTokenScores, opts: GreedyOptions): Promise<number[][]> {
  const { rows, vocab, budget } = opts;
  if (!Number.isInteger(budget) || budget < 0) throw new RangeError(`budget must be >= 0, got ${budget}`);
  const out: number[][] = Array.from({ length: rows }, () => []);
  const done = new Array<boolean>(rows).fill(budget === 0);
  while (done.includes(false)) {
    const scores = await next(out);
    if (scores.length !== rows * vocab) {
      throw new Error(`greedyDecode: got ${scores.length} scores, expected ${rows} rows x ${vocab}`);
    }
    for (let b = 0; b < rows; b++) {
      if (done[b]) continue;
      const id = argmax(scores, b * vocab, vocab);
      if (opts.stop(id)) done[b] = true;
      else {
        out[b]!.push(id);
        done[b] = out[b]!.length >= budget;
      }
    }
  }
  return out;
}

/** Index of the largest of `values[offset .. offset + n)`; the first one on ties. */
function argmax(values: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (values[offset + i]! > values[offset + best]!) best = i;
  return best;
}
