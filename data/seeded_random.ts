/**
 * Seeded randomness shared by the data sources: a batch or scene is a pure function of its seeds
 * (run seed, step, index), so a dataset never needs storing and a resumed run sees the same rows.
 */

/** A 32-bit mix of integers, each taken as its low and high 32-bit words (FNV-1a, then murmur3's finalizer). */
export function mix(...xs: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    for (const word of [x >>> 0, Math.floor(x / 2 ** 32) >>> 0]) h = finish(Math.imul(h ^ word, 0x01000193));
  }
  return h;
}

function finish(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Uniform numbers in [0, 1) from a 32-bit seed: a Weyl sequence through the murmur3 finalizer. */
export function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    return finish(s) / 2 ** 32;
  };
}
