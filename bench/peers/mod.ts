/**
 * Peer benchmarks: other JavaScript ML libraries on the same WebGPU adapter as ours, for
 * `deno task bench --json`. Dev-time only: spec/, compiler/, kernels/ and runtime/ never import this.
 *
 * - TensorFlow.js 4.22.0 (tfjs-core + tfjs-backend-webgpu): matmul.
 * - jax-js 0.1.25 (@jax-js/jax), devices webgpu and wasm: matmul, and T1 training steps (t1_jax.ts).
 *
 * Every call runs in a child process (see _spawn.ts for why), so each costs a process start and a
 * device start (a few seconds) on top of the measurement.
 *
 *   const gflops = await jaxMatmulGflops({ m: 1024, k: 1024, n: 1024 }, "webgpu");
 */
import { numberField, numbersField, type PeerMatmulShape, validateShape } from "./_protocol.ts";
import { PeerError, runPeer } from "./_spawn.ts";
import { T1 } from "./t1_inputs.ts";

export type { JaxDevice, PeerMatmulShape, PeerName } from "./_protocol.ts";
export { PeerError };

export const PEER_VERSIONS = {
  "@tensorflow/tfjs-core": "4.22.0",
  "@tensorflow/tfjs-backend-webgpu": "4.22.0",
  "@jax-js/jax": "0.1.25",
} as const;

export interface MatmulOptions {
  /** Untimed runs first (compilation, pipelines); default 2. */
  readonly warmup?: number;
  /** Timed runs; the median is reported. Default 5. */
  readonly runs?: number;
  /** The child is killed after this long; default 10 minutes. */
  readonly timeoutMs?: number;
}

const rows = T1.batch * T1.seq; // 2912

/** The matmul shapes of the bench: two squares and T1's projections over batch x positions rows. */
export const PEER_MATMUL_SHAPES: readonly { readonly name: string; readonly shape: PeerMatmulShape }[] = [
  { name: "512^3", shape: { m: 512, k: 512, n: 512 } },
  { name: "1024^3", shape: { m: 1024, k: 1024, n: 1024 } },
  { name: "T1 q/k/v/o 2912x128x128", shape: { m: rows, k: 128, n: 128 } },
  { name: "T1 w1/w3 2912x128x512", shape: { m: rows, k: 128, n: 512 } },
  { name: "T1 w2 2912x512x128", shape: { m: rows, k: 512, n: 128 } },
  { name: "T1 head 2912x128x260", shape: { m: rows, k: 128, n: T1.vocab } },
  { name: "T1 patch in 2912x16x128", shape: { m: rows, k: 16, n: 128 } },
  { name: "T1 patch out 2912x128x16", shape: { m: rows, k: 128, n: 16 } },
];

const TEN_MINUTES = 600_000;

/** tfjs WebGPU matmul GFLOP/s (median run; each run = matMul + readback). */
export async function tfjsMatmulGflops(shape: PeerMatmulShape, opts: MatmulOptions = {}): Promise<number> {
  validateShape(shape);
  const { warmup = 2, runs = 5, timeoutMs = TEN_MINUTES } = opts;
  const result = await runPeer({ op: "matmul-gflops", peer: "tfjs-webgpu", shape, warmup, runs }, timeoutMs);
  return numberField(result, "gflops");
}

/** jax-js matmul GFLOP/s on `device` (median run; each run = jit matmul + readback). */
export async function jaxMatmulGflops(
  shape: PeerMatmulShape,
  device: "webgpu" | "wasm",
  opts: MatmulOptions = {},
): Promise<number> {
  validateShape(shape);
  const { warmup = 2, runs = 5, timeoutMs = TEN_MINUTES } = opts;
  const peer = device === "webgpu" ? "jax-webgpu" : "jax-wasm";
  return numberField(await runPeer({ op: "matmul-gflops", peer, shape, warmup, runs }, timeoutMs), "gflops");
}

/** C = A x B computed by a peer (row-major in and out), for checking the harnesses against a reference. */
export async function peerMatmul(
  peer: "tfjs-webgpu" | "jax-webgpu" | "jax-wasm",
  a: Float32Array,
  b: Float32Array,
  shape: PeerMatmulShape,
  timeoutMs = TEN_MINUTES,
): Promise<Float32Array> {
  validateShape(shape);
  const batch = shape.batch ?? 1;
  if (a.length !== batch * shape.m * shape.k || b.length !== batch * shape.k * shape.n) {
    throw new Error(
      `peerMatmul: A has ${a.length} and B ${b.length} values, the shape ${JSON.stringify(shape)} needs ` +
        `${batch * shape.m * shape.k} and ${batch * shape.k * shape.n}`,
    );
  }
  const result = await runPeer({ op: "matmul-product", peer, shape, a: [...a], b: [...b] }, timeoutMs);
  return Float32Array.from(numbersField(result, "product"));
}

export interface T1StepOptions {
  /** Untimed steps first; the first compiles the step. Default 1. */
  readonly warmup?: number;
  /** The child is killed after this long; default 10 minutes plus 2 minutes per step. */
  readonly timeoutMs?: number;
}

export interface T1StepReport {
  /** Median training-step time, ms (loss readback included). */
  readonly stepMs: number;
  readonly runsMs: readonly number[];
  /** Loss after each step, warmup included: finite and about ln(260) + 5 at the start. */
  readonly losses: readonly number[];
}

/** T1 in jax-js (t1_jax.ts): forward + grad + AdamW as one jit step, timed over `steps` steps. */
export async function jaxT1Step(
  device: "webgpu" | "wasm",
  steps: number,
  opts: T1StepOptions = {},
): Promise<T1StepReport> {
  const { warmup = 1, timeoutMs = TEN_MINUTES + 120_000 * (steps + warmup) } = opts;
  const result = await runPeer({ op: "t1-step", device, warmup, steps }, timeoutMs);
  return {
    stepMs: numberField(result, "stepMs"),
    runsMs: numbersField(result, "runsMs"),
    losses: numbersField(result, "losses"),
  };
}

/** Median T1 training-step ms of jax-js on `device`. */
export async function jaxT1StepMs(
  device: "webgpu" | "wasm",
  steps: number,
  opts?: T1StepOptions,
): Promise<number> {
  return (await jaxT1Step(device, steps, opts)).stepMs;
}
