/**
 * What the bench asks a peer child process (run_peer.ts) and what it answers: one JSON request on
 * stdin, one `PEER_RESULT <json>` line on stdout. The libraries may print their own lines around it.
 */

/** A peer library and, for jax-js, its device. */
export type PeerName = "tfjs-webgpu" | "jax-webgpu" | "jax-wasm";
export type JaxDevice = "webgpu" | "wasm";

/** C [batch, m, n] = A [batch, m, k] x B [batch, k, n]; batch 1 when left out. */
export interface PeerMatmulShape {
  readonly batch?: number;
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

export type PeerRequest =
  | {
    readonly op: "matmul-gflops";
    readonly peer: PeerName;
    readonly shape: PeerMatmulShape;
    readonly warmup: number;
    readonly runs: number;
  }
  | {
    readonly op: "matmul-product";
    readonly peer: PeerName;
    readonly shape: PeerMatmulShape;
    /** Row-major A and B. */
    readonly a: readonly number[];
    readonly b: readonly number[];
  }
  | { readonly op: "t1-step"; readonly device: JaxDevice; readonly warmup: number; readonly steps: number };

export interface GflopsResult {
  readonly gflops: number;
  readonly runsMs: readonly number[];
}
export interface ProductResult {
  readonly product: readonly number[];
}
export interface T1StepResult {
  readonly stepMs: number;
  readonly runsMs: readonly number[];
  /** The loss after every step, warmup included. */
  readonly losses: readonly number[];
}
export type PeerResult = GflopsResult | ProductResult | T1StepResult;

/** An answer as parsed: the result's fields are checked by whoever asked (see `numberField`). */
export type PeerAnswer = { readonly ok: true; readonly result: Record<string, unknown> } | {
  readonly ok: false;
  readonly error: string;
};

export const RESULT_MARKER = "PEER_RESULT ";

export const batchOf = (s: PeerMatmulShape): number => s.batch ?? 1;
export const matmulFlops = (s: PeerMatmulShape): number => 2 * batchOf(s) * s.m * s.k * s.n;

/** The answer line in a child's stdout, checked field by field; throws saying what is wrong. */
export function parseAnswer(stdout: string): PeerAnswer {
  const line = stdout.split("\n").findLast((l) => l.startsWith(RESULT_MARKER));
  if (line === undefined) throw new Error(`no "${RESULT_MARKER.trim()}" line in the child's stdout`);
  const value: unknown = JSON.parse(line.slice(RESULT_MARKER.length));
  if (!isRecord(value) || typeof value.ok !== "boolean") throw new Error(`malformed answer: ${line}`);
  if (!value.ok) return { ok: false, error: String(value.error) };
  const result = value.result;
  if (!isRecord(result)) throw new Error(`answer without a result: ${line}`);
  return { ok: true, result };
}

/** `result[key]` if it is a finite number. */
export function numberField(result: Record<string, unknown>, key: string): number {
  const value = result[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`peer result: "${key}" should be a finite number, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `result[key]` if it is an array of numbers (non-finite ones, e.g. a NaN loss, arrive as null). */
export function numbersField(result: Record<string, unknown>, key: string): number[] {
  const value = result[key];
  if (!Array.isArray(value)) throw new Error(`peer result: "${key}" should be an array, got ${typeof value}`);
  return value.map((x) => (typeof x === "number" ? x : NaN));
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

export function validateShape(s: PeerMatmulShape): void {
  for (const [name, size] of Object.entries({ batch: batchOf(s), m: s.m, k: s.k, n: s.n })) {
    if (!Number.isInteger(size) || size < 1) {
      throw new Error(`matmul shape: ${name} must be a positive integer, got ${size}`);
    }
  }
}
