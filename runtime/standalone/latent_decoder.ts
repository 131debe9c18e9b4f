/**
 * The VAE a latent model's module carries (plan.json `decoder`, its weights next to it): `decode`
 * turns a generated latent into the picture the VAE run's `decode` entry makes of it, `encode`
 * turns a picture into the latent `caption` reads. The same conversions as the CLIs'
 * (runtime/latent_planes.ts), on a second executor whose plan holds only the VAE's two entries.
 */
import type { Plan } from "../../compiler/plan.ts";
import { Executor } from "../executor.ts";
import { CheckpointError } from "../file_errors.ts";
import {
  normalize,
  pixelsToPlanes,
  planesToPixels,
  unnormalize,
  type VaeEntry,
  vaeSlots,
} from "../latent_planes.ts";
import { checkAgainstParams, decodeSafetensors } from "../safetensors.ts";
import type { ModuleDecoder } from "./plan_file.ts";

export interface LatentDecoder {
  /** A model latent [C, s, s] (normalized) to pixels [3, S, S] in [-1, 1]. */
  decode(latent: Float32Array): Promise<Float32Array>;
  /** Pixels [3, S, S] to the model's latent (the encoder's mean, normalized). */
  encode(pixels: Float32Array): Promise<Float32Array>;
  destroy(): void;
}

/** Checks `bytes` (the decoder's weights, read from `source`) against its plan and prepares the GPU. */
export async function openLatentDecoder(
  d: ModuleDecoder,
  bytes: Uint8Array,
  source: string,
): Promise<LatentDecoder> {
  const file = decodeSafetensors(bytes, source);
  checkAgainstParams(file, d.plan.params, source);
  const executor = await Executor.create(zerosInit(d.plan));
  const values = new Map<string, ArrayLike<number>>();
  for (const p of d.plan.params) {
    const data = file.tensors.get(p.path)!.data;
    if (!(data instanceof Float32Array)) {
      executor.destroy();
      throw new CheckpointError(`${source}: tensor "${p.path}" is not f32`);
    }
    values.set(p.path, data);
  }
  await executor.setAllParams(values);
  const { latent, pixels } = d;
  // One call at a time: concurrent generate/caption calls would otherwise share the entry's buffers.
  let queue: Promise<unknown> = Promise.resolve();
  const run = (entry: VaeEntry, x: Float32Array): Promise<Float32Array> => {
    const slots = vaeSlots(d.plan, entry);
    const result = queue.then(async () =>
      (await executor.run(entry, { [slots.input]: x }))[slots.output] as Float32Array
    );
    queue = result.catch(() => undefined);
    return result;
  };
  const check = (x: Float32Array, c: number, s: number, what: string) => {
    if (x.length !== c * s * s) throw new RangeError(`${what} has ${c}x${s}x${s} values, got ${x.length}`);
  };
  return {
    async decode(v) {
      check(v, latent.channels, latent.size, "a latent");
      const z = planesToPixels(unnormalize(v, d, latent.size), latent.channels, latent.size);
      return pixelsToPlanes(await run("decode", z), pixels.channels, pixels.size);
    },
    async encode(x) {
      check(x, pixels.channels, pixels.size, "a picture");
      const z = await run("encode", planesToPixels(x, pixels.channels, pixels.size));
      return normalize(pixelsToPlanes(z, latent.channels, latent.size), d, latent.size);
    },
    destroy: () => executor.destroy(),
  };
}

/** Parameters come from the weights file: skip the executor's seeded init. */
function zerosInit(plan: Plan): Plan {
  return { ...plan, params: plan.params.map((p) => ({ ...p, init: { kind: "zeros" } })) };
}
