/**
 * Seeded Gaussian noise for sampling, drawn on the host with the same Philox generator the
 * compiler's RNG ops use. Value i of stream s is a pure function of (seed, s, i): row k of a batch
 * gets the same noise whatever the batch size, so a sample is reproducible alone or among others.
 */
import { normalFromWords, randomWords } from "../../compiler/philox.ts";

/** `n` standard normal values of stream `stream`, starting at element `start` of that stream. */
export function gaussianNoise(seed: number, stream: number, n: number, start = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const [w0, w1] = randomWords(seed, 0, stream, start + i);
    out[i] = normalFromWords(w0, w1);
  }
  return out;
}
