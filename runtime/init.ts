/**
 * Parameter initialization. Element j of parameter number k is a pure function of (seed, k, j)
 * through Philox, so a seed gives the same model on every machine and in every language that
 * follows compiler/philox.ts.
 */
import type { ParamLayout } from "../compiler/plan.ts";
import { normalFromWords, randomWords, uniformFromWord } from "../compiler/philox.ts";

/** Philox stream for initialization ("init" in ASCII), apart from the small streams of rand ops. */
export const INIT_STREAM = 0x696e6974;

/** The flat `params` vector of `count` f32 values, each parameter filled by its init. */
export function initParams(
  params: readonly ParamLayout[],
  count: number,
  seed: number,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(count);
  params.forEach((p, k) => {
    const size = p.shape.reduce((a, b) => a * b, 1);
    if (p.offset < 0 || p.offset + size > count) {
      throw new Error(
        `initParams: "${p.path}" [${p.shape.join(", ")}] at offset ${p.offset} overruns ${count} parameters`,
      );
    }
    const view = out.subarray(p.offset, p.offset + size);
    fill(view, p, seed, k);
  });
  return out;
}

function fill(view: Float32Array, p: ParamLayout, seed: number, k: number): void {
  const init = p.init;
  switch (init.kind) {
    case "zeros":
      view.fill(0);
      return;
    case "ones":
      view.fill(1);
      return;
    case "values":
      view.set(init.data);
      return;
    case "normal":
      for (let j = 0; j < view.length; j++) {
        const w = randomWords(seed, k, INIT_STREAM, j);
        view[j] = init.std * normalFromWords(w[0], w[1]);
      }
      return;
    case "uniform":
      // [-bound, bound)
      for (let j = 0; j < view.length; j++) {
        const w = randomWords(seed, k, INIT_STREAM, j);
        view[j] = init.bound * (2 * uniformFromWord(w[0]) - 1);
      }
      return;
  }
}
