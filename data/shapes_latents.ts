/**
 * The shapes scenes as VAE latents, for Transfusion on latents (examples/transfusion_latent.ts): every
 * train and held-out scene encoded once by the VAE run's `encode` entry (its mean, on the device),
 * normalized per channel to zero mean and unit variance (the diffusion schedule assumes data of about
 * unit scale; Stable Diffusion scales its latents for the same reason), and cached next to the run as
 * `DIR/latents/<train>x<held-out>-step<step>.{f32,json}`. `decodeLatents` undoes the normalization and
 * runs the VAE's `decode` entry: what the shapes eval applies to generated latents before the pixel
 * checker reads them.
 *
 * Latents travel as [C, s, s] planes, the layout of Transfusion images; the VAE's entries take and
 * give NHWC ([batch, s, s, C]), transposed at the boundary.
 */
import { compile } from "../compiler/compile.ts";
import { loadSpec, UsageError } from "../cli/load_spec.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { describeAdapter, openDevice } from "../runtime/device.ts";
import { Executor } from "../runtime/executor.ts";
import { type SceneImages, shapesDataset, type ShapesSplit } from "./shapes.ts";

export interface LatentTable {
  readonly vaeRun: string;
  readonly step: number;
  readonly channels: number;
  readonly side: number;
  readonly trainScenes: number;
  readonly heldOutScenes: number;
  /** Per channel, what was subtracted and divided by. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** [trainScenes + heldOutScenes, C, s, s], train first, normalized. */
  readonly values: Float32Array;
}

const cachePaths = (vaeRun: string, train: number, held: number, step: number) => {
  const base = `${vaeRun}/latents/${train}x${held}-step${step}`;
  return { values: `${base}.f32`, meta: `${base}.json` };
};

/** The VAE run's step and latent shape [side, side, channels], from its run.json (synchronous). */
export function vaeRunInfo(vaeRun: string): { step: number; config: Record<string, unknown> } | undefined {
  try {
    const info = JSON.parse(Deno.readTextFileSync(`${vaeRun}/checkpoint/run.json`));
    return { step: info.step, config: info.config ?? {} };
  } catch {
    return undefined;
  }
}

/** The cached table for this run's current step, or undefined (synchronous: specs read it at load). */
export function readLatents(vaeRun: string, train: number, held: number): LatentTable | undefined {
  const info = vaeRunInfo(vaeRun);
  if (!info) return undefined;
  const paths = cachePaths(vaeRun, train, held, info.step);
  try {
    const meta = JSON.parse(Deno.readTextFileSync(paths.meta));
    const bytes = Deno.readFileSync(paths.values);
    return { ...meta, values: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
  } catch {
    return undefined;
  }
}

/** The VAE run's spec and weights on the device, for one entry. */
async function openEntry(vaeRun: string, entry: "encode" | "decode") {
  const checkpoint = await loadCheckpoint(vaeRun);
  const info = checkpoint.run;
  const model = await loadSpec(info.spec.path);
  if (!model.entries?.[entry]) {
    throw new UsageError(`${info.spec.path} (VAE run ${vaeRun}) has no "${entry}" entry`);
  }
  const handle = await openDevice();
  const plan = compile(model, {
    config: (info.config ?? {}) as Record<string, unknown>,
    dims: { ...model.dims, ...info.dims },
    entries: [entry],
    adapterClass: describeAdapter(handle).adapterClass,
  });
  const executor = await Executor.create(plan, { handle });
  const params = new Map<string, Float32Array>();
  for (const p of plan.params) {
    const data = checkpoint.model.tensors.get(p.path)?.data;
    if (!(data instanceof Float32Array)) {
      throw new UsageError(`${checkpoint.path}: no f32 parameter "${p.path}" for ${info.spec.path}`);
    }
    params.set(p.path, data);
  }
  await executor.setAllParams(params);
  const input = plan.entries[entry]!.inputs.find((s) => s.name !== "seed")!;
  const output = plan.entries[entry]!.outputs.find((s) => s.dtype === "f32")!;
  return { executor, input, output, step: info.step, spec: info.spec.path, model, info };
}

/** [n, C, s, s] <-> [n, s, s, C] for one image of `channels` planes of `side`. */
function planesToPixels(x: Float32Array, channels: number, side: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < side * side; p++) out[p * channels + c] = x[c * side * side + p]!;
  }
  return out;
}
function pixelsToPlanes(x: Float32Array, channels: number, side: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < side * side; p++) out[c * side * side + p] = x[p * channels + c]!;
  }
  return out;
}

/** Encodes the first `train` and `held` scenes of the shapes dataset (seed 0, 32x32) and caches them. */
export async function encodeLatents(
  vaeRun: string,
  train: number,
  held: number,
  log: (line: string) => void = (l) => console.error(l),
): Promise<LatentTable> {
  const vae = await openEntry(vaeRun, "encode");
  try {
    const [batch, S, , C] = vae.input.shape as [number, number, number, number];
    const [, side, , channels] = vae.output.shape as [number, number, number, number];
    const dataset = shapesDataset(S);
    const per = channels * side * side;
    const values = new Float32Array((train + held) * per);
    const all: [ShapesSplit, number][] = [
      ...Array.from({ length: train }, (_, i): [ShapesSplit, number] => ["train", i]),
      ...Array.from({ length: held }, (_, i): [ShapesSplit, number] => ["held-out", i]),
    ];
    log(
      `encoding ${all.length} shapes scenes with the VAE of ${vaeRun} (step ${vae.step}), ${batch} at a time`,
    );
    for (let at = 0; at < all.length; at += batch) {
      const x = new Float32Array(batch * S * S * C);
      all.slice(at, at + batch).forEach(([split, i], j) =>
        x.set(planesToPixels(dataset.image(dataset.scene(split, i)), C, S), j * S * S * C)
      );
      const out =
        (await vae.executor.run("encode", { [vae.input.name]: x }))[vae.output.name] as Float32Array;
      for (let j = 0; j < Math.min(batch, all.length - at); j++) {
        values.set(pixelsToPlanes(out.subarray(j * per, (j + 1) * per), channels, side), (at + j) * per);
      }
    }
    // Per-channel statistics over the training scenes only.
    const mean: number[] = [], std: number[] = [];
    for (let c = 0; c < channels; c++) {
      let s = 0, s2 = 0;
      for (let n = 0; n < train; n++) {
        for (let p = 0; p < side * side; p++) {
          const v = values[n * per + c * side * side + p]!;
          s += v;
          s2 += v * v;
        }
      }
      const count = train * side * side;
      mean.push(s / count);
      std.push(Math.sqrt(Math.max(s2 / count - (s / count) ** 2, 1e-12)));
    }
    for (let n = 0; n < train + held; n++) {
      for (let c = 0; c < channels; c++) {
        for (let p = 0; p < side * side; p++) {
          const k = n * per + c * side * side + p;
          values[k] = (values[k]! - mean[c]!) / std[c]!;
        }
      }
    }
    const table: LatentTable = {
      vaeRun,
      step: vae.step,
      channels,
      side,
      trainScenes: train,
      heldOutScenes: held,
      mean,
      std,
      values,
    };
    const paths = cachePaths(vaeRun, train, held, vae.step);
    await Deno.mkdir(`${vaeRun}/latents`, { recursive: true });
    await Deno.writeFile(paths.values, new Uint8Array(values.buffer));
    const { values: _, ...meta } = table;
    await Deno.writeTextFile(paths.meta, JSON.stringify(meta, null, 2) + "\n");
    log(`cached ${paths.values}`);
    return table;
  } finally {
    vae.executor.destroy();
  }
}

/** The table as the shapes dataset's model images. */
export function latentImages(t: LatentTable): SceneImages {
  const per = t.channels * t.side * t.side;
  return {
    channels: t.channels,
    side: t.side,
    of(split, index) {
      const n = split === "train" ? t.trainScenes : t.heldOutScenes;
      if (index >= n) {
        throw new Error(`shapes latents: ${split} scene ${index} is not in the cache (0..${n - 1})`);
      }
      const at = (split === "train" ? index : t.trainScenes + index) * per;
      return t.values.slice(at, at + per);
    },
    describe: () =>
      `VAE latents ${t.channels}x${t.side}x${t.side} of ${t.vaeRun} at step ${t.step}, normalized per channel`,
    openDecoder: () => openLatentDecoder(t),
  };
}

/** Generated latents ([C, s, s], normalized) to [3, S, S] pixels through the VAE's `decode` entry. */
export async function openLatentDecoder(t: LatentTable) {
  const vae = await openEntry(t.vaeRun, "decode");
  const [batch] = vae.input.shape as [number];
  const per = t.channels * t.side * t.side;
  const [, S, , C] = vae.output.shape as [number, number, number, number];
  return {
    async decode(latents: readonly Float32Array[]): Promise<Float32Array[]> {
      const out: Float32Array[] = [];
      for (let at = 0; at < latents.length; at += batch) {
        const z = new Float32Array(batch * per);
        latents.slice(at, at + batch).forEach((l, j) => {
          const raw = l.map((v, k) =>
            v * t.std[Math.floor(k / (t.side * t.side))]! + t.mean[Math.floor(k / (t.side * t.side))]!
          );
          z.set(planesToPixels(raw, t.channels, t.side), j * per);
        });
        const y =
          (await vae.executor.run("decode", { [vae.input.name]: z }))[vae.output.name] as Float32Array;
        for (let j = 0; j < Math.min(batch, latents.length - at); j++) {
          out.push(pixelsToPlanes(y.slice(j * S * S * C, (j + 1) * S * S * C), C, S));
        }
      }
      return out;
    },
    destroy: () => vae.executor.destroy(),
  };
}
