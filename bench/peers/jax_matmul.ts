/**
 * jax-js (@jax-js/jax 0.1.25) matmul on its webgpu device (Deno's WebGPU, the adapter our kernels
 * get) or its wasm device (CPU). On Deno, WebGPU results can only be read asynchronously (`data()`).
 */
import { type Array as JaxArray, defaultDevice, init, jit, numpy as np, random } from "@jax-js/jax";
import { timeRuns } from "./_timing.ts";
import {
  batchOf,
  type GflopsResult,
  type JaxDevice,
  matmulFlops,
  type PeerMatmulShape,
  validateShape,
} from "./_protocol.ts";

const started = new Map<JaxDevice, Promise<void>>();

/** Starts `device` once and makes it the default; throws if jax-js cannot start it here. */
export function useJaxDevice(device: JaxDevice): Promise<void> {
  let ready = started.get(device);
  if (!ready) {
    ready = (async () => {
      const available = await init(device);
      if (!available.includes(device)) {
        throw new Error(
          `jax-js: device "${device}" did not start (available: ${available.join(", ") || "none"})`,
        );
      }
      defaultDevice(device);
    })();
    started.set(device, ready);
  }
  return ready;
}

const dims = (s: PeerMatmulShape, rows: number, cols: number) =>
  s.batch === undefined ? [rows, cols] : [batchOf(s), rows, cols];

const matmul = jit((a: JaxArray, b: JaxArray) => np.matmul(a, b));

/** C = A x B on `device`; a, b row-major as the shape says. */
export async function jaxMatmul(
  a: Float32Array<ArrayBuffer>,
  b: Float32Array<ArrayBuffer>,
  shape: PeerMatmulShape,
  device: JaxDevice,
): Promise<Float32Array> {
  validateShape(shape);
  await useJaxDevice(device);
  const ja = np.array(a, { device }).reshape(dims(shape, shape.m, shape.k));
  const jb = np.array(b, { device }).reshape(dims(shape, shape.k, shape.n));
  const out = await matmul(ja, jb).data(); // data() releases the result
  if (!(out instanceof Float32Array)) throw new Error(`jax-js: matmul gave ${out.constructor.name}, not f32`);
  return out;
}

/** GFLOP/s of the median run: each run is one jit-compiled matmul and its readback (`data()`). */
export async function jaxMatmulTiming(
  shape: PeerMatmulShape,
  device: JaxDevice,
  opts: { readonly warmup: number; readonly runs: number },
): Promise<GflopsResult> {
  validateShape(shape);
  await useJaxDevice(device);
  const keys = random.split(random.key(0), 2);
  const a = random.normal(keys.ref.slice(0), dims(shape, shape.m, shape.k));
  const b = random.normal(keys.slice(1), dims(shape, shape.k, shape.n));
  await Promise.all([a.blockUntilReady(), b.blockUntilReady()]);
  const timing = await timeRuns(async () => {
    await matmul(a.ref, b.ref).data();
  }, opts);
  a.dispose();
  b.dispose();
  return { gflops: matmulFlops(shape) / timing.medianMs / 1e6, runsMs: timing.runsMs };
}
