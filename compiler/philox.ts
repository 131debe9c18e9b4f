/**
 * Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the
 * counter-based generator behind `rand_uniform` / `rand_normal`. Element i of a random tensor is a
 * pure function of (seed, offset, stream, i), so every backend draws the same bits. The WGSL twin is
 * in kernels/random.ts; both follow this file.
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** The high 32 bits of a 32x32-bit product, from 16-bit halves (exact in f64, mirrored in WGSL). */
export function mulhi32(a: number, b: number): number {
  const [ah, al, bh, bl] = [a >>> 16, a & 0xffff, b >>> 16, b & 0xffff];
  const m1 = ah * bl;
  const m2 = al * bh;
  const mid = ((al * bl) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (ah * bh + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Four random u32 words for counter (c0..c3) and key (k0, k1). */
export function philox(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number) {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3] as const;
}

/** The words for element `i` of stream `stream`, with seed = [key, offset]. */
export function randomWords(seed: number, offset: number, stream: number, i: number) {
  return philox(i >>> 0, offset >>> 0, stream >>> 0, 0, seed >>> 0, 0);
}

const INV24 = 1 / 16777216;

/** Uniform in [0, 1): the top 24 bits, exactly representable in f32. */
export function uniformFromWord(w: number): number {
  return (w >>> 8) * INV24;
}

/** Standard normal by Box-Muller from two words; u1 is in (0, 1] so the log is finite. */
export function normalFromWords(w0: number, w1: number): number {
  const u1 = ((w0 >>> 8) + 1) * INV24;
  const u2 = (w1 >>> 8) * INV24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
