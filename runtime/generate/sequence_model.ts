/**
 * The model as interleaved generation sees it: next-token scores after a row, a prediction for the
 * image a row is drawing, and the commit of a finished image. Two implementations over a compiled
 * Transfusion plan:
 *   uncachedModel  re-runs the "logits" / "denoise" entries over the whole row on every call (the
 *                  oracle; every call costs the full sequence)
 *   cachedModel    (cached_model.ts) the KV-cache entries "prefill" / "decode" / "denoise_span"
 *                  (docs/kv_contract.md): each call runs only the positions the cache lacks
 * Batch row b of every call is row b of the model; a row passed as undefined is not run.
 */
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import type { Executor } from "../executor.ts";
import { assembleRows, IDLE_ROW, type Row, type RowGeometry, rowGeometry, type RowImage } from "./rows.ts";

export interface SequenceModel {
  readonly config: TransfusionConfig;
  /** Rows per call (the request's rows, twice as many under guidance, must fit). */
  readonly batch: number;
  readonly geometry: RowGeometry;
  /** Forgets every row: the next calls start from empty rows. */
  reset(): void;
  /** Scores [rows.length, vocab] of the token after each row's last position (zeros for undefined rows). */
  nextScores(rows: readonly (Row | undefined)[]): Promise<Float32Array>;
  /**
   * The prediction (config target space) [rows.length, C*H*W] for the last image of each row, given its
   * x_t [rows.length, C*H*W] at time t (DDPM: an integer timestep; flow: in [0, 1]). The rows' last
   * images' own pixels are ignored.
   */
  denoise(rows: readonly (Row | undefined)[], xt: Float32Array, t: number): Promise<Float32Array>;
  /** The last image of each row holds its final (clean) pixels: later positions see it at t = 0. */
  commit(rows: readonly (Row | undefined)[]): Promise<void>;
}

/** What the models need of an Executor (a generated runtime can supply its own). */
/** What a SequenceModel needs of an executor; `submit` lets it skip waiting on outputs it drops. */
export type EntryRunner = Pick<Executor, "run" | "plan"> & Partial<Pick<Executor, "submit">>;

export function uncachedModel(executor: EntryRunner, config: TransfusionConfig): SequenceModel {
  const { batch, g, model } = modelFrame(executor, config, ["logits", "denoise"]);
  const filled = (rows: readonly (Row | undefined)[]) => {
    if (rows.length > batch) throw new Error(`${rows.length} rows do not fit the batch of ${batch}`);
    return Array.from({ length: batch }, (_, b) => rows[b] ?? IDLE_ROW);
  };
  return {
    ...model,
    reset: () => {},
    commit: () => Promise.resolve(),
    async nextScores(rows) {
      const a = assembleRows(filled(rows), g);
      const logits = (await executor.run("logits", {
        tokens: a.tokens,
        ...a.layout,
        images: a.images,
        patch_pos: a.patchPos,
        image_valid: a.imageValid,
      })).logits as Float32Array; // [B, seq, vocab]
      return gatherRows(rows, g.vocab, (row, b) => (b * g.seq + row.tokens.length - 1) * g.vocab, logits);
    },
    async denoise(rows, xt, t) {
      const noisy = filled(
        rows.map((row, b) => row && withLastImage(row, xt.subarray(b * g.pixels, (b + 1) * g.pixels))),
      );
      const a = assembleRows(noisy, g);
      const times = new Float32Array(batch * g.N); // earlier images are clean: t = 0
      rows.forEach((row, b) => row && (times[b * g.N + row.images.length - 1] = t));
      const pred = (await executor.run("denoise", {
        tokens: a.tokens,
        ...a.layout,
        x_t: a.images,
        t: times,
        patch_pos: a.patchPos,
        image_valid: a.imageValid,
      })).pred as Float32Array; // [B, N, C*H*W]
      return gatherRows(rows, g.pixels, (row, b) => (b * g.N + row.images.length - 1) * g.pixels, pred);
    },
  };
}

/** Batch size, geometry and the fields every model shares; checks the plan has the entries. */
export function modelFrame(executor: EntryRunner, config: TransfusionConfig, entries: readonly string[]) {
  const missing = entries.filter((e) => !executor.plan.entries[e]);
  if (missing.length > 0) {
    throw new Error(
      `the plan of "${executor.plan.model}" has no ${missing.join(", ")} entry (compile it with them)`,
    );
  }
  const batch = executor.plan.dims.batch ?? 1;
  const seq = executor.plan.dims.seq ?? config.seq;
  const g = rowGeometry({ ...config, seq });
  const model = { config: { ...config, seq }, batch, geometry: g };
  return { batch, g, model };
}

/** `rows.length` blocks of `width` values, block b read from `at(row b, b)` (zeros for undefined rows). */
function gatherRows(
  rows: readonly (Row | undefined)[],
  width: number,
  at: (row: Row, b: number) => number,
  from: Float32Array,
): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, b) => row && out.set(from.subarray(at(row, b), at(row, b) + width), b * width));
  return out;
}

/** The row with its last image's pixels replaced. */
function withLastImage(row: Row, pixels: Float32Array): Row {
  const last = lastImage(row);
  return { tokens: row.tokens, images: [...row.images.slice(0, -1), { start: last.start, pixels }] };
}

export function lastImage(row: Row): RowImage {
  const img = row.images[row.images.length - 1];
  if (!img) throw new Error("sequence model: the row has no image to denoise or commit");
  return img;
}
