/**
 * Train steps in flight: the loop submits step N+1 (and more) before it reads anything of step N.
 * Each submitted step holds its results promise (loss, metrics, grad norm in one small readback
 * buffer of the executor's pool); they are taken out oldest first, so the log, the progress line and
 * the NaN check see every step late but in order, each named by its own step number.
 *
 * Why a queue of depth K rather than awaiting each step: Deno's mapAsync resolves no sooner than the
 * next device poll (~10-12 ms), so a loop that waits on every step cannot go faster than that however
 * small its kernels are. With K steps queued, one poll delivers up to K results, and the host builds
 * the next batches while the device runs the earlier steps.
 */
import type { RunResults, SubmittedRun } from "../executor.ts";

/** One submitted train step and what the loop needs of it when its results arrive. */
export interface StepInFlight {
  /** Optimizer steps taken after it (1-based). */
  readonly step: number;
  readonly lr: number;
  readonly results: Promise<RunResults>;
}

export class StepsInFlight {
  readonly #queue: StepInFlight[] = [];

  /** `depth`: the most steps submitted and not yet taken out; 1 is the synchronous loop. */
  constructor(readonly depth: number) {
    if (!Number.isInteger(depth) || depth < 1) {
      throw new RangeError(`StepsInFlight: depth must be an integer >= 1, got ${depth}`);
    }
  }

  get size(): number {
    return this.#queue.length;
  }

  get full(): boolean {
    return this.#queue.length >= this.depth;
  }

  /** The last step submitted, or undefined when none is in flight. */
  get newest(): number | undefined {
    return this.#queue.at(-1)?.step;
  }

  add(run: SubmittedRun, lr: number): void {
    const last = this.newest;
    if (last !== undefined && run.step !== last + 1) {
      throw new Error(`StepsInFlight: step ${run.step} submitted after step ${last}`);
    }
    if (this.full) throw new Error(`StepsInFlight: already ${this.depth} steps in flight`);
    this.#queue.push({ step: run.step, lr, results: run.results });
  }

  /** The oldest step and its results, waiting for them if they are not back yet. */
  async next(): Promise<StepInFlight & { readonly out: RunResults }> {
    const oldest = this.#queue.shift();
    if (!oldest) throw new Error("StepsInFlight: no step in flight");
    return { ...oldest, out: await oldest.results };
  }

  /**
   * Waits for every step still in flight and drops their results (the loop stopped on an earlier
   * step): nothing is left reading, and a rejection of theirs is not left unhandled.
   */
  async discard(): Promise<void> {
    const rest = this.#queue.splice(0);
    await Promise.allSettled(rest.map((s) => s.results));
  }
}
