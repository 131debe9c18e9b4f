/**
 * Where a spec's training data comes from. A spec may declare `data: (config, dims) => DataSource`;
 * the training CLI then needs nothing else to train it. Batches are pure functions of (seed, step),
 * so a resumed run sees exactly the batches an uninterrupted one would.
 */
export type Batch = Record<string, ArrayLike<number>>;

export interface DataSource {
  /** Inputs of the `loss` entry (all but `seed`) for training step `step`. */
  batch(step: number, seed: number): Batch;
  /** Held-out batch `index` (0 .. evalBatches - 1), the same every time. */
  evalBatch?(index: number): Batch;
  readonly evalBatches?: number;
  /** Tokens (positions) per batch, for the tokens/s progress figure. */
  readonly tokensPerBatch: number;
  /** One line for progress output: the data set and its size. */
  describe(): string;
}
