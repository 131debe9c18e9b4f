/**
 * The autoencoder side of the shapes evaluation: reconstruction error of held-out images, and the
 * hook that opens a trained VAE run for it.
 *
 * The hook's contract: the run's spec declares either an entry `reconstruct` (one float input of
 * [batch, 3, S, S] or [batch, S, S, 3] images, its first float output the same size) or `encode` and
 * `decode` (encode's images to its first float output, which is decode's one float input, decode's
 * first float output the images), as examples/vae.ts does. Images go in and come out as [3, S, S]
 * planes; an entry taking [batch, S, S, 3] (NHWC, spec/nn's conv layout) gets them transposed. A
 * `seed` input, where an entry has one, is filled by the executor (a VAE that samples z draws it
 * from there).
 */
import { compile } from "../compiler/compile.ts";
import { loadSpec, UsageError } from "../cli/load_spec.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { describeAdapter, openDevice } from "../runtime/device.ts";
import { Executor } from "../runtime/executor.ts";
import type { TensorSlot } from "../compiler/plan.ts";
import { chwToHwc, hwcToChw } from "./shapes_images.ts";

export interface ImageAutoencoder {
  /** Each image through the encoder and the decoder: the same [3, S, S] shape out. */
  reconstruct(images: readonly Float32Array[]): Promise<Float32Array[]>;
  destroy(): void;
}

export interface ReconstructionError {
  readonly count: number;
  /** Mean over every value of the squared difference, on the model's [-1, 1] scale. */
  readonly mse: number;
  /** 10 log10(peak^2 / mse) with peak-to-peak 2 (the [-1, 1] range): the usual PSNR of [0, 1] images. */
  readonly psnr: number;
}

export function reconstructionError(
  inputs: readonly Float32Array[],
  outputs: readonly Float32Array[],
): ReconstructionError {
  if (inputs.length !== outputs.length) {
    throw new Error(`reconstructionError: ${inputs.length} inputs but ${outputs.length} reconstructions`);
  }
  let sum = 0, n = 0;
  inputs.forEach((x, i) => {
    const y = outputs[i]!;
    if (y.length !== x.length) {
      throw new Error(`reconstructionError: image ${i} has ${y.length} values, not ${x.length}`);
    }
    for (let k = 0; k < x.length; k++) sum += (x[k]! - y[k]!) ** 2;
    n += x.length;
  });
  const mse = n ? sum / n : NaN;
  return { count: inputs.length, mse, psnr: 10 * Math.log10(4 / mse) };
}

/** The entry names the hook looks for, in order of preference. */
export const AUTOENCODER_ENTRIES = [["reconstruct"], ["encode", "decode"]] as const;

/** Opens a trained autoencoder run (its spec and checkpoint) for `reconstruct`. */
export async function openAutoencoder(dir: string): Promise<ImageAutoencoder> {
  const checkpoint = await loadCheckpoint(dir);
  const info = checkpoint.run;
  const model = await loadSpec(info.spec.path);
  const chain = AUTOENCODER_ENTRIES.find((names) => names.every((n) => model.entries?.[n]));
  if (!chain) {
    throw new UsageError(
      `${info.spec.path} (model "${model.name}", run ${dir}) has neither a "reconstruct" entry nor "encode" ` +
        `and "decode" entries; the shapes eval reconstructs held-out images through one of them`,
    );
  }
  const dims = { ...model.dims, ...info.dims };
  const handle = await openDevice();
  const plan = compile(model, {
    config: (info.config ?? {}) as Record<string, unknown>,
    dims,
    entries: [...chain],
    adapterClass: describeAdapter(handle).adapterClass,
  });
  const executor = await Executor.create(plan, { handle });
  const params = new Map<string, Float32Array>();
  for (const p of plan.params) {
    const data = checkpoint.model.tensors.get(p.path)?.data;
    if (!data || data instanceof BigInt64Array || data instanceof BigUint64Array) {
      throw new UsageError(`${checkpoint.path}: no float parameter "${p.path}" for ${info.spec.path}`);
    }
    params.set(p.path, data instanceof Float32Array ? data : Float32Array.from(data));
  }
  await executor.setAllParams(params);
  const floatIn = (entry: string): TensorSlot => {
    const ins = plan.entries[entry]!.inputs.filter((s) => s.name !== "seed");
    if (ins.length !== 1 || ins[0]!.dtype !== "f32") {
      throw new UsageError(
        `${info.spec.path}: entry "${entry}" must take one f32 input besides seed, got ` +
          ins.map((s) => `${s.name}: ${s.dtype}[${s.shape.join(", ")}]`).join(", "),
      );
    }
    return ins[0]!;
  };
  const floatOut = (entry: string): string => {
    const out = plan.entries[entry]!.outputs.find((s) => s.dtype === "f32");
    if (!out) throw new UsageError(`${info.spec.path}: entry "${entry}" has no f32 output`);
    return out.name;
  };
  const first = floatIn(chain[0]!);
  const batch = first.shape[0] ?? 1;
  const perImage = first.shape.slice(1).reduce((a, b) => a * b, 1);
  // [batch, S, S, 3]: the images travel as planes and are transposed at the boundary.
  const side = first.shape[1]!;
  const nhwc = first.shape.length === 4 && first.shape[3] === 3 && side !== 3;
  const toModel = (img: Float32Array) => (nhwc ? chwToHwc(img, side) : img);
  const fromModel = (img: Float32Array) => (nhwc ? hwcToChw(img, side) : img);
  const run = async (images: Float32Array): Promise<Float32Array> => {
    let x = images;
    for (const entry of chain) {
      const out = await executor.run(entry, { [floatIn(entry).name]: x });
      x = out[floatOut(entry)] as Float32Array;
    }
    return x;
  };
  return {
    async reconstruct(images) {
      const out: Float32Array[] = [];
      for (let at = 0; at < images.length; at += batch) {
        const part = images.slice(at, at + batch);
        const packed = new Float32Array(batch * perImage);
        part.forEach((img, i) => {
          if (img.length !== perImage) {
            throw new UsageError(
              `${info.spec.path}: images of ${img.length} values, the autoencoder takes ${perImage}`,
            );
          }
          packed.set(toModel(img), i * perImage);
        });
        const y = await run(packed);
        if (y.length !== packed.length) {
          throw new UsageError(
            `${info.spec.path}: reconstructions of ${y.length / batch} values per image, not ${perImage}`,
          );
        }
        for (let i = 0; i < part.length; i++) out.push(fromModel(y.slice(i * perImage, (i + 1) * perImage)));
      }
      return out;
    },
    destroy: () => executor.destroy(),
  };
}
