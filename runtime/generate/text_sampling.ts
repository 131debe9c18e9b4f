/**
 * Choosing the next text token from a row of scores (logits): greedy, or a draw at a temperature
 * from the top-k and/or nucleus (top-p) candidates. The draw takes its uniform number as an
 * argument, so every function here is pure; `textUniform` makes that number from (seed, stream,
 * step) with the Philox generator of the compiler's RNG ops, so a row draws the same tokens alone
 * or among other rows.
 */
import { randomWords, uniformFromWord } from "../../compiler/philox.ts";

/** How text tokens are chosen; no temperature (or 0) means greedy. */
export interface TextSampling {
  /** Softmax temperature; 0 or absent: greedy (the highest score). */
  readonly temperature?: number;
  /** Keep only the k highest-scoring tokens (k >= 1). */
  readonly topK?: number;
  /** Keep the fewest highest-probability tokens whose probabilities sum to at least p (0 < p <= 1). */
  readonly topP?: number;
}

/** The candidates a draw picks from, most probable first (ties: lower id first); probs sum to 1. */
export interface TokenDistribution {
  readonly ids: readonly number[];
  readonly probs: readonly number[];
}

/** Throws a RangeError naming the first option out of range. */
export function checkTextSampling(opts: TextSampling): void {
  const { temperature = 0, topK, topP } = opts;
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(`temperature must be >= 0, got ${temperature}`);
  }
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) {
    throw new RangeError(`topK must be an integer >= 1, got ${topK}`);
  }
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  }
}

/** Whether `opts` picks the highest score without drawing. */
export function isGreedy(opts: TextSampling): boolean {
  return (opts.temperature ?? 0) === 0;
}

/** Index of the highest of `scores`; the first one on ties. */
export function greedyToken(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/** The softmax of scores / temperature, cut to the top-k, then to the nucleus of mass top-p. */
export function tokenDistribution(scores: ArrayLike<number>, opts: TextSampling): TokenDistribution {
  checkTextSampling(opts);
  if (isGreedy(opts)) return { ids: [greedyToken(scores)], probs: [1] };
  const order = Array.from({ length: scores.length }, (_, i) => i)
    .filter((i) => scores[i]! > -Infinity)
    .sort((a, b) => scores[b]! - scores[a]! || a - b);
  if (order.length === 0) throw new RangeError("tokenDistribution: every score is -Infinity or NaN");
  const kept = order.slice(0, opts.topK ?? order.length);
  const top = scores[kept[0]!]!;
  // Subtracting the largest score keeps exp() finite; the constant cancels in the normalization.
  const weights = kept.map((i) => Math.exp((scores[i]! - top) / opts.temperature!));
  let probs = normalize(weights);
  let ids = kept;
  if (opts.topP !== undefined && opts.topP < 1) {
    let mass = 0;
    let n = 0;
    while (n < probs.length && mass < opts.topP) mass += probs[n++]!;
    [ids, probs] = [kept.slice(0, n), normalize(probs.slice(0, n))];
  }
  return { ids, probs };
}

/** The token `u` (uniform in [0, 1)) picks: the first whose cumulative probability exceeds u. */
export function sampleToken(scores: ArrayLike<number>, opts: TextSampling, u: number): number {
  if (isGreedy(opts)) {
    checkTextSampling(opts);
    return greedyToken(scores);
  }
  if (!(u >= 0 && u < 1)) throw new RangeError(`sampleToken: u must be in [0, 1), got ${u}`);
  const { ids, probs } = tokenDistribution(scores, opts);
  let cumulative = 0;
  for (let i = 0; i < ids.length; i++) {
    cumulative += probs[i]!;
    if (u < cumulative) return ids[i]!;
  }
  return ids[ids.length - 1]!; // rounding left the sum a hair under 1
}

/** Text draws use Philox offset 1; the image noise of noise.ts uses offset 0. */
const TEXT_OFFSET = 1;

/** The uniform number for token `step` of random stream `stream` (one stream per prompt). */
export function textUniform(seed: number, stream: number, step: number): number {
  const [w] = randomWords(seed, TEXT_OFFSET, stream, step);
  return uniformFromWord(w);
}

function normalize(weights: readonly number[]): number[] {
  const total = weights.reduce((s, w) => s + w, 0);
  return weights.map((w) => w / total);
}
