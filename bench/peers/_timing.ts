/** Wall-clock timing shared by the peer harnesses. */

export interface Timing {
  /** Median of the timed runs, ms. */
  readonly medianMs: number;
  /** Every timed run in order, ms. */
  readonly runsMs: readonly number[];
}

/**
 * Times `run` `runs` times after `warmup` untimed calls (compilation, pipeline creation, buffer
 * pools). `run` must resolve only once its result is back on the host, so each run includes the
 * device work and one readback, as a user of the library would see it.
 */
export async function timeRuns(
  run: () => Promise<void>,
  opts: { readonly warmup: number; readonly runs: number },
): Promise<Timing> {
  if (!Number.isInteger(opts.runs) || opts.runs < 1) {
    throw new Error(`timeRuns: runs must be an integer >= 1, got ${opts.runs}`);
  }
  for (let i = 0; i < opts.warmup; i++) await run();
  const runsMs: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const start = performance.now();
    await run();
    runsMs.push(performance.now() - start);
  }
  return { medianMs: median(runsMs), runsMs };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
