/**
 * Several samplers, one model call per step: each participant k runs its own `diffusionSampler`
 * (its own seed block) with `denoiser(k)`; every call waits until all participants have called for
 * the step, then `run` evaluates them together. Samplers with the same options call in the same
 * sequence of times, so they stay in step.
 */
import type { Denoiser } from "./sampler.ts";

/** x_t of each participant (the rows it asked for) at time t -> its predictions, same sizes. */
export type BatchedCall = (calls: readonly Float32Array[], t: number) => Promise<Float32Array[]>;

export function lockstep(participants: number, run: BatchedCall): (k: number) => Denoiser {
  type Waiting = {
    x: Float32Array;
    t: number;
    resolve: (out: Float32Array) => void;
    reject: (e: unknown) => void;
  };
  let waiting = new Map<number, Waiting>();
  const flush = async (batch: Map<number, Waiting>) => {
    const all = Array.from({ length: participants }, (_, k) => batch.get(k)!);
    try {
      const t = all[0]!.t;
      const off = all.find((w) => w.t !== t);
      if (off) throw new Error(`lockstep: participants called at different times (${t} and ${off.t})`);
      const out = await run(all.map((w) => w.x), t);
      all.forEach((w, k) => w.resolve(out[k]!));
    } catch (e) {
      for (const w of all) w.reject(e);
    }
  };
  return (k) => (x, t) =>
    new Promise<Float32Array>((resolve, reject) => {
      if (waiting.has(k)) throw new Error(`lockstep: participant ${k} called twice in one step`);
      waiting.set(k, { x, t, resolve, reject });
      if (waiting.size === participants) {
        const batch = waiting;
        waiting = new Map();
        void flush(batch);
      }
    });
}
