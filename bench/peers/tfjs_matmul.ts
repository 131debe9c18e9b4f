/**
 * TensorFlow.js (tfjs-core + tfjs-backend-webgpu 4.22.0) matmul on Deno's WebGPU, the same adapter
 * our kernels get. Runs as is in Deno 2.9: the backend needs only `navigator.gpu`, which Deno has.
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
import { timeRuns } from "./_timing.ts";
import { batchOf, type GflopsResult, matmulFlops, type PeerMatmulShape, validateShape } from "./_protocol.ts";

let ready: Promise<void> | undefined;

/** Selects the WebGPU backend once; throws (rather than falling back to the CPU) if it cannot. */
function webgpuBackend(): Promise<void> {
  ready ??= (async () => {
    // Small ops on host-resident inputs would otherwise run on tfjs's CPU backend.
    tf.env().set("WEBGPU_CPU_FORWARD", false);
    if (!(await tf.setBackend("webgpu"))) {
      throw new Error("tfjs: the webgpu backend failed to initialize (no adapter? see the lines above)");
    }
    await tf.ready();
    if (tf.getBackend() !== "webgpu") throw new Error(`tfjs: backend is ${tf.getBackend()}, not webgpu`);
  })();
  return ready;
}

const dims = (s: PeerMatmulShape, rows: number, cols: number) =>
  s.batch === undefined ? [rows, cols] : [batchOf(s), rows, cols];

/** C = A x B on the GPU; a, b row-major as the shape says. */
export async function tfjsMatmul(
  a: Float32Array,
  b: Float32Array,
  shape: PeerMatmulShape,
): Promise<Float32Array> {
  validateShape(shape);
  await webgpuBackend();
  const [ta, tb] = [tf.tensor(a, dims(shape, shape.m, shape.k)), tf.tensor(b, dims(shape, shape.k, shape.n))];
  const c = tf.matMul(ta, tb);
  const out = await c.data();
  tf.dispose([ta, tb, c]);
  if (!(out instanceof Float32Array)) throw new Error(`tfjs: matmul gave ${out.constructor.name}, not f32`);
  return out;
}

/** GFLOP/s of the median run: each run is one matMul and its readback (`data()`). */
export async function tfjsMatmulTiming(
  shape: PeerMatmulShape,
  opts: { readonly warmup: number; readonly runs: number },
): Promise<GflopsResult> {
  validateShape(shape);
  await webgpuBackend();
  const a = tf.randomNormal(dims(shape, shape.m, shape.k));
  const b = tf.randomNormal(dims(shape, shape.k, shape.n));
  const timing = await timeRuns(async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  }, opts);
  tf.dispose([a, b]);
  return { gflops: matmulFlops(shape) / timing.medianMs / 1e6, runsMs: timing.runsMs };
}
