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
import { describeAdapter, openDevice } from "../runtime/device.ts";
import { Executor } from "../runtime/executor.ts";
import { pixelsToPlanes, planesToPixels, vaeSlots } from "../runtime/latent_planes.ts";
import type { DataSource, LatentImages } from "../spec/data.ts";
import { compileVae, type LatentCodec, openLatentCodec, VaeRunMissing } from "./latent_codec.ts";
import {
  type SceneImages,
  shapesCaptions,
  type ShapesConfig,
  shapesDataset,
  type ShapesOptions,
  type ShapesSource,
  type ShapesSplit,
} from "./shapes.ts";

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

/** Encodes the first `train` and `held` scenes of the shapes dataset (seed 0, 32x32) and caches them. */
export async function encodeLatents(
  vaeRun: string,
  train: number,
  held: number,
  log: (line: string) => void = (l) => console.error(l),
): Promise<LatentTable> {
  const handle = await openDevice();
  const vae = await compileVae(vaeRun, ["encode"], { adapterClass: describeAdapter(handle).adapterClass });
  const executor = await Executor.create(vae.plan, { handle });
  try {
    await executor.setAllParams(vae.params);
    const slots = vaeSlots(vae.plan, "encode");
    const { batch } = vae;
    const [S, C] = [vae.pixel.side, vae.pixel.channels];
    const { side, channels } = vae.latent;
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
      const out = (await executor.run("encode", { [slots.input]: x }))[slots.output] as Float32Array;
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
    executor.destroy();
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

/** What the table declares to sampling (spec/data.ts `LatentImages`): the VAE run and the scaling. */
export function latentsOf(t: LatentTable): LatentImages {
  return { vaeRun: t.vaeRun, channels: t.channels, side: t.side, mean: t.mean, std: t.std };
}

/** Generated latents ([C, s, s], normalized) to [3, S, S] pixels through the VAE's `decode` entry. */
export function openLatentDecoder(t: LatentTable): Promise<LatentCodec> {
  return openLatentCodec(latentsOf(t));
}

/** The cached table of the VAE run, else encoded now; undefined when there is no VAE run to encode with. */
export async function openLatentTable(
  vaeRun: string,
  train: number,
  held: number,
): Promise<LatentTable | undefined> {
  const cached = readLatents(vaeRun, train, held);
  if (cached) return cached;
  return vaeRunInfo(vaeRun) ? await encodeLatents(vaeRun, train, held) : undefined;
}

/**
 * The shapes rows over the table's latents, declaring them (`DataSource.latents`) so that sampling
 * decodes them; without a table (no VAE run) the spec cannot train, sample or compile, and says so,
 * naming the VAE run (`VaeRunMissing`, which the CLIs report as it is).
 */
export function latentShapesSource(
  table: LatentTable | undefined,
  vaeRun: string,
  config: ShapesConfig,
  dims: Readonly<Record<string, number>>,
  opts: Omit<ShapesOptions, "images" | "trainScenes" | "heldOutScenes">,
  spec: string,
): ShapesSource & Pick<DataSource, "latents"> {
  if (!table) {
    throw new VaeRunMissing(
      vaeRun,
      `${spec}: no VAE run at ${vaeRun} (no ${vaeRun}/checkpoint/run.json) to encode the scenes with and ` +
        `decode the model's latents; train one first: deno task train examples/vae_shapes.ts --out ${vaeRun}`,
    );
  }
  const source = shapesCaptions(config, dims, {
    ...opts,
    trainScenes: table.trainScenes,
    heldOutScenes: table.heldOutScenes,
    images: latentImages(table),
  });
  // Assigned, not spread: the source has getters (truncatedRows) a spread would freeze.
  return Object.assign(source, { latents: latentsOf(table) });
}
