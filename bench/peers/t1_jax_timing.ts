/**
 * Training-step time of T1 in jax-js (t1_jax.ts) on one device: a fixed batch, fresh t and noise
 * every step, and the loss read back after each step (that readback is the sync point).
 */
import { numpy as np, random, tree } from "@jax-js/jax";
import { useJaxDevice } from "./jax_matmul.ts";
import type { JaxDevice, T1StepResult } from "./_protocol.ts";
import { type AdamState, deviceBatch, initT1Params, t1TrainStep } from "./t1_jax.ts";
import { T1, t1AlphaBar, t1Batch, t1Mask, t1Rope } from "./t1_inputs.ts";
import { median } from "./_timing.ts";

/** Median ms of `steps` timed steps after `warmup` untimed ones (the first compiles the step). */
export async function jaxT1Timing(device: JaxDevice, warmup: number, steps: number): Promise<T1StepResult> {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new Error(`T1 steps must be an integer >= 1, got ${steps}`);
  }
  await useJaxDevice(device);
  const batch = deviceBatch(t1Batch(1), { mask: t1Mask(), ...t1Rope(), alphaBar: t1AlphaBar() }, device);
  let params = initT1Params(7);
  const zeros = () => tree.map((w: np.Array) => np.zerosLike(w), tree.ref(params)) as typeof params;
  let state: AdamState = { m: zeros(), v: zeros() };
  let key = random.key(3);
  const { beta1, beta2 } = T1.adamw;
  const losses: number[] = [];
  const runsMs: number[] = [];
  for (let t = 1; t <= warmup + steps; t++) {
    const start = performance.now();
    const keys = random.split(key, 2);
    key = keys.ref.slice(0);
    const corrections = np.array(new Float32Array([1 / (1 - beta1 ** t), 1 / (1 - beta2 ** t)]), { device });
    const [loss, next, nextState] = t1TrainStep(params, state, tree.ref(batch), keys.slice(1), corrections);
    [params, state] = [next, nextState];
    losses.push((await loss.data())[0]!);
    if (t > warmup) runsMs.push(performance.now() - start);
  }
  tree.dispose([params, state, batch, key]);
  return { stepMs: median(runsMs), runsMs, losses };
}
