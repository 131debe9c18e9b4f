import { module, normal, param } from "../params.ts";
import type { Inc } from "../rank.ts";
import type { Tensor } from "../tensor.ts";

type Apply = <R extends number>(ids: Tensor<"i32" | "u32", R>) => Tensor<"f32", Inc<R>>;

/**
 * Token embedding: rows of a table picked by integer ids. ids: [...] -> [..., dim].
 * Ids outside [0, vocab) read as a zero row (the gather convention), which makes them usable as padding.
 * Params: table [vocab, dim] (normal, std 0.02 by default).
 */
export function embedding(vocab: number, dim: number, opts: { std?: number } = {}) {
  return module(
    { table: param([vocab, dim], normal(opts.std ?? 0.02)) },
    (p): Apply => (ids) => p.table.gather(ids) as never,
  );
}
