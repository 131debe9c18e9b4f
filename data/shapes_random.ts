/**
 * Choices for the shapes dataset over a seeded generator (seeded_random.ts): every scene is a pure
 * function of (dataset seed, split, index), and every training row's choices of (run seed, step).
 */

/** One of `items`, uniformly. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new Error("pick: no items to choose from");
  return items[Math.floor(random() * items.length)]!;
}

/** A number in [lo, hi] uniformly (lo when the range is empty). */
export function between(random: () => number, lo: number, hi: number): number {
  return hi > lo ? lo + random() * (hi - lo) : lo;
}
