/**
 * Moving latents between the model's layout and a VAE's (pure functions, no GPU): Transfusion images
 * are channel planes [C, s, s], normalized per channel; a VAE's entries take and give NHWC
 * [s, s, C] per image, unnormalized. Shared by the CLIs' decoder (data/latent_codec.ts) and the
 * generated module's (runtime/standalone/latent_decoder.ts), so both decode exactly alike.
 */
import type { Plan } from "../compiler/plan.ts";

export type VaeEntry = "encode" | "decode";

/** Per-channel normalization of latents (spec/data.ts `LatentImages`): model = (z - mean) / std. */
export interface LatentScale {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** [C, s, s] planes -> [s, s, C] pixels of one image. */
export function planesToPixels(x: Float32Array, channels: number, side: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < side * side; p++) out[p * channels + c] = x[c * side * side + p]!;
  }
  return out;
}

/** [s, s, C] pixels -> [C, s, s] planes of one image. */
export function pixelsToPlanes(x: Float32Array, channels: number, side: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < side * side; p++) out[c * side * side + p] = x[p * channels + c]!;
  }
  return out;
}

/** A model latent [C, s, s] back to the VAE's scale: z = v * std[c] + mean[c]. */
export function unnormalize(v: Float32Array, scale: LatentScale, side: number): Float32Array {
  const plane = side * side;
  return v.map((x, k) => x * scale.std[Math.floor(k / plane)]! + scale.mean[Math.floor(k / plane)]!);
}

/** A VAE latent [C, s, s] to the model's scale: (z - mean[c]) / std[c]. */
export function normalize(z: Float32Array, scale: LatentScale, side: number): Float32Array {
  const plane = side * side;
  return z.map((x, k) => (x - scale.mean[Math.floor(k / plane)]!) / scale.std[Math.floor(k / plane)]!);
}

/**
 * Runs `entry` over images `batch` at a time (the plan's fixed batch; the last call padded with
 * zeros), each image `inPer` values in, `outPer` out, in the entry's own NHWC layout.
 */
export async function inBatches(
  images: readonly Float32Array[],
  batch: number,
  inPer: number,
  outPer: number,
  run: (x: Float32Array) => Promise<Float32Array>,
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let at = 0; at < images.length; at += batch) {
    const x = new Float32Array(batch * inPer);
    images.slice(at, at + batch).forEach((img, j) => {
      if (img.length !== inPer) {
        throw new Error(`an image of ${inPer} values was expected, got ${img.length}`);
      }
      x.set(img, j * inPer);
    });
    const y = await run(x);
    for (let j = 0; j < Math.min(batch, images.length - at); j++) {
      out.push(y.slice(j * outPer, (j + 1) * outPer));
    }
  }
  return out;
}

/** The slots of the VAE entries: decode z -> image, encode x -> mean (the latent used, no sampling). */
export function vaeSlots(plan: Plan, entry: VaeEntry): { input: string; output: string } {
  const e = plan.entries[entry];
  if (!e) throw new Error(`the VAE plan has no "${entry}" entry`);
  const input = e.inputs.find((s) => s.name !== "seed");
  const output = entry === "encode"
    ? e.outputs.find((s) => s.name === "mean") ?? e.outputs.find((s) => s.dtype === "f32")
    : e.outputs.find((s) => s.dtype === "f32");
  if (!input || !output) throw new Error(`the VAE's "${entry}" entry has no f32 input and output`);
  return { input: input.name, output: output.name };
}
