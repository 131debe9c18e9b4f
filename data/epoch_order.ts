/**
 * The order a data set's examples are seen in: a fresh Fisher-Yates permutation per (seed, epoch),
 * so example g of a run (g = step * batch + i) is a pure function of (seed, g), whatever was asked
 * before: a resumed run sees the rows an uninterrupted one would.
 */
import { DataError } from "./data_files.ts";
import { mix, uniform } from "./seeded_random.ts";

/** A permutation of 0..n-1 from a 32-bit seed. */
export function permutation(n: number, seed: number): Int32Array {
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const random = uniform(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return perm;
}

/** Run-wide position g -> example index, epoch by epoch; the last two permutations are kept. */
export class EpochOrder {
  readonly #cache = new Map<string, Int32Array>();
  constructor(readonly n: number, readonly stream: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`EpochOrder: needs at least one example, got ${n}`);
  }

  at(seed: number, g: number): number {
    const epoch = Math.floor(g / this.n);
    const key = `${seed}/${epoch}`;
    let perm = this.#cache.get(key);
    if (!perm) {
      perm = permutation(this.n, mix(seed, epoch, this.stream));
      if (this.#cache.size >= 2) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, perm);
    }
    return perm[g % this.n]!;
  }
}

/** A step must be an integer >= 0; `who` names the source in the error. */
export function checkStep(who: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`${who}: step must be an integer >= 0, got ${step}`);
  }
}

/**
 * Which of n examples are held out: `fraction` of them (rounded, at least 1 when n >= 2 and the
 * fraction is > 0, never all), chosen by a permutation fixed by `seed` alone (not the run's seed),
 * so every run of a data set holds out the same examples. Both lists are in ascending order.
 */
export function splitHeldOut(
  n: number,
  fraction: number,
  seed: number,
  who: string,
): { train: number[]; heldOut: number[] } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new DataError(`${who}: heldOut must be a fraction in [0, 1), got ${fraction}`);
  }
  const count = fraction === 0 || n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
  const perm = permutation(n, mix(seed, n, 3));
  const held = new Set(perm.subarray(0, count));
  const all = Array.from({ length: n }, (_, i) => i);
  return { train: all.filter((i) => !held.has(i)), heldOut: all.filter((i) => held.has(i)) };
}
