/**
 * `cachedModel`: a SequenceModel over the KV-cache entries of docs/kv_contract.md. The plan's
 * state `kv` holds every position's keys and values per batch row; this side remembers how many
 * leading positions of each row the cache holds (`cached[b]`) and the tokens they were written
 * for, and runs only what is missing:
 *   prefill       a row the cache holds nothing of (a prompt): every position in one call
 *   decode        one position per call and row (each row at its own `start`)
 *   denoise_span  the P patches of the image a row is drawing; once more at t = 0 on commit
 * Positions the cache does not hold yet are padding in the layout passed along (doc = -1), so
 * stale values left there by earlier rows or requests are never seen: no state reset is needed.
 *
 * Only outputs something is chosen from are waited on: a decode of a known token whose logits no
 * row needs (catching up through text already decided) and the commit pass (it only writes the
 * cache) are submitted without waiting; the next call that reads queues behind them and settles
 * them (raising a device error of theirs there).
 */
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { SPECIAL } from "../tokenizer.ts";
import { assembleRows, IDLE_ROW, type Row, rowPrefix } from "./rows.ts";
import { type EntryRunner, lastImage, modelFrame, type SequenceModel } from "./sequence_model.ts";

export const CACHED_ENTRIES = ["prefill", "decode", "denoise_span"] as const;

/** Whether a plan carries the cached entries. */
export function hasCachedEntries(executor: EntryRunner): boolean {
  return CACHED_ENTRIES.every((e) => executor.plan.entries[e] !== undefined);
}

export function cachedModel(executor: EntryRunner, config: TransfusionConfig): SequenceModel {
  const { batch, g, model } = modelFrame(executor, config, CACHED_ENTRIES);
  const cached = new Array<number>(batch).fill(0);
  const written: (readonly number[])[] = Array.from({ length: batch }, () => []);
  const check = (rows: readonly (Row | undefined)[]) => {
    if (rows.length > batch) throw new Error(`${rows.length} rows do not fit the batch of ${batch}`);
    rows.forEach((row, b) => {
      // A row that is not a continuation of what the cache holds starts over.
      if (row && !samePrefix(written[b]!, row.tokens, cached[b]!)) cached[b] = 0;
    });
  };
  const layoutOf = (rows: readonly (Row | undefined)[], upTo: (row: Row, b: number) => number) =>
    assembleRows(
      Array.from({ length: batch }, (_, b) => {
        const row = rows[b];
        return row ? rowPrefix(row, upTo(row, b), g) : IDLE_ROW;
      }),
      g,
    );
  // Runs an entry whose outputs are wanted only when `wanted`; otherwise it is queued, not awaited.
  const dropped: Promise<unknown>[] = [];
  const runFor = async (wanted: boolean, entry: string, inputs: Record<string, ArrayLike<number>>) => {
    if (wanted || !executor.submit) return await executor.run(entry, inputs);
    const { results } = await executor.submit(entry, inputs);
    results.catch(() => {}); // settled (and its error raised) by the next call that reads
    dropped.push(results);
    return undefined;
  };
  const settle = async () => {
    await Promise.all(dropped.splice(0));
  };
  const remember = (b: number, row: Row, upTo: number) => {
    cached[b] = upTo;
    written[b] = row.tokens.slice(0, upTo);
  };

  /** Makes the cache hold positions [0, upTo[b]) of each row; scores [rows, vocab] after upTo[b] - 1. */
  async function catchUp(rows: readonly (Row | undefined)[], upTo: readonly number[]): Promise<Float32Array> {
    const scores = new Float32Array(rows.length * g.vocab);
    const fresh = rows.map((row, b) => row !== undefined && cached[b] === 0 && upTo[b]! > 0);
    if (fresh.includes(true)) {
      const a = layoutOf(rows.map((row, b) => (fresh[b] ? row : undefined)), (_, b) => upTo[b]!);
      const logits = (await executor.run("prefill", {
        tokens: a.tokens,
        ...a.layout,
        images: a.images,
        patch_pos: a.patchPos,
        image_valid: a.imageValid,
        start: Int32Array.from({ length: batch }, (_, b) => (fresh[b] ? 0 : -1)),
      })).logits as Float32Array; // [B, seq, vocab]
      rows.forEach((row, b) => {
        if (!fresh[b]) return;
        const at = (b * g.seq + upTo[b]! - 1) * g.vocab;
        scores.set(logits.subarray(at, at + g.vocab), b * g.vocab);
        remember(b, row!, upTo[b]!);
      });
    }
    for (;;) {
      const active = rows.map((row, b) => row !== undefined && cached[b]! < upTo[b]!);
      if (!active.includes(true)) {
        await settle();
        return scores;
      }
      const at = (b: number) => cached[b]!;
      rows.forEach((row, b) => {
        if (active[b] && row!.images.some((img) => at(b) >= img.start && at(b) < img.start + g.P)) {
          throw new Error(`cachedModel: row ${b} position ${at(b)} is an image patch the cache lacks`);
        }
      });
      const a = layoutOf(rows.map((row, b) => (active[b] ? row : undefined)), (_, b) => at(b) + 1);
      // Scores are read only after a row's last position; earlier ones are teacher-forced.
      const last = rows.map((_, b) => active[b] && at(b) + 1 === upTo[b]);
      const out = await runFor(last.includes(true), "decode", {
        token: Int32Array.from(
          { length: batch },
          (_, b) => (active[b] ? rows[b]!.tokens[at(b)]! : SPECIAL.bos),
        ),
        start: Int32Array.from({ length: batch }, (_, b) => (active[b] ? at(b) : -1)),
        ...a.layout,
      });
      const logits = out?.logits as Float32Array | undefined; // [B, vocab]
      rows.forEach((row, b) => {
        if (!active[b]) return;
        if (last[b]) scores.set(logits!.subarray(b * g.vocab, (b + 1) * g.vocab), b * g.vocab);
        remember(b, row!, at(b) + 1);
      });
    }
  }

  /**
   * Runs denoise_span for each row's last image at x_t (rows of `xt`) and time t; [rows, C*H*W], or
   * undefined (not waited on) when the prediction is not `wanted`.
   */
  async function span(
    rows: readonly (Row | undefined)[],
    xt: Float32Array,
    t: number,
    wanted = true,
  ): Promise<Float32Array | undefined> {
    const starts = rows.map((row) => (row ? lastImage(row).start : 0));
    rows.forEach((row, b) => row && (cached[b] = Math.min(cached[b]!, starts[b]!)));
    await catchUp(rows, starts); // BOI (and whatever text precedes it)
    const x = new Float32Array(batch * g.pixels);
    x.set(xt.subarray(0, rows.length * g.pixels));
    const a = layoutOf(rows, (row) => lastImage(row).start + g.P);
    const out = await runFor(wanted, "denoise_span", {
      x_t: x,
      t: new Float32Array(batch).fill(t),
      start: Int32Array.from({ length: batch }, (_, b) => (rows[b] ? starts[b]! : -1)),
      ...a.layout,
    });
    if (wanted) await settle();
    const pred = out?.pred as Float32Array | undefined; // [B, C, H, W]
    return pred?.slice(0, rows.length * g.pixels);
  }

  return {
    ...model,
    reset: () => cached.fill(0),
    nextScores(rows) {
      check(rows);
      // The scores after the last position come from running it, so it must not count as cached.
      rows.forEach((row, b) => row && (cached[b] = Math.min(cached[b]!, row.tokens.length - 1)));
      return catchUp(rows, rows.map((row) => row?.tokens.length ?? 0));
    },
    async denoise(rows, xt, t) {
      check(rows);
      return (await span(rows, xt, t))!;
    },
    async commit(rows) {
      check(rows);
      const clean = new Float32Array(rows.length * g.pixels);
      rows.forEach((row, b) => row && clean.set(lastImage(row).pixels, b * g.pixels));
      // The pass at t = 0 only leaves the clean image's keys and values in the cache.
      await span(rows, clean, 0, false);
      rows.forEach((row, b) => row && remember(b, row, lastImage(row).start + g.P));
    },
  };
}

function samePrefix(a: readonly number[], b: readonly number[], n: number): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
