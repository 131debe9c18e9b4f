/**
 * The VAE behind a latent-image run (spec/data.ts `LatentImages`), on the device: `openLatentCodec`
 * decodes the model's latents to pixels (what `sample`, `generate` and `eval` show) and encodes
 * pictures to latents (what `caption` reads); `compileVae` gives the plan and weights alone, which
 * `deno task compile` puts into a generated module. Both read the VAE run's checkpoint (its last
 * step's parameters, as the latents were encoded with) and compile its spec's entries.
 *
 * Images cross this boundary as [C, side, side] planes in the model's layout: latents normalized
 * per channel, pixels in [-1, 1].
 */
import { compile } from "../compiler/compile.ts";
import type { Plan } from "../compiler/plan.ts";
import { loadSpec, UsageError } from "../cli/load_spec.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { describeAdapter, openDevice } from "../runtime/device.ts";
import { Executor } from "../runtime/executor.ts";
import {
  inBatches,
  normalize,
  pixelsToPlanes,
  planesToPixels,
  unnormalize,
  type VaeEntry,
  vaeSlots,
} from "../runtime/latent_planes.ts";
import { DATA_RECORD } from "../runtime/generate/image_view.ts";
import type { AnyModel } from "../spec/model.ts";
import type { LatentImages } from "../spec/data.ts";

export type { VaeEntry };

/** The VAE run a latent spec names is not there: nothing can decode (or encode) its images. */
export class VaeRunMissing extends Error {
  constructor(readonly vaeRun: string, message: string) {
    super(message);
    this.name = "VaeRunMissing";
  }
}

/** Throws `VaeRunMissing` naming `vaeRun` and `why` it is needed when the run has no checkpoint. */
export function requireVaeRun(vaeRun: string, why: string): void {
  try {
    Deno.statSync(`${vaeRun}/checkpoint/run.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new VaeRunMissing(
      vaeRun,
      `the VAE run ${vaeRun} is missing (no ${vaeRun}/checkpoint/run.json): ${why}`,
    );
  }
}

/** A VAE run's entries compiled, with the parameters they read and the shapes they map between. */
export interface VaeEntries {
  readonly vaeRun: string;
  readonly spec: string;
  readonly step: number;
  readonly plan: Plan;
  readonly params: ReadonlyMap<string, Float32Array>;
  /** Rows per call of every entry. */
  readonly batch: number;
  /** The VAE's pixels [side, side, channels] and latents, from the decode entry's shapes. */
  readonly pixel: { readonly side: number; readonly channels: number };
  readonly latent: { readonly side: number; readonly channels: number };
}

/**
 * Compiles `entries` of the VAE run's spec (config and dims as trained; `batch` rows per call,
 * default the run's) and reads the parameters they use from its checkpoint.
 */
export async function compileVae(
  vaeRun: string,
  entries: readonly VaeEntry[],
  opts: { readonly batch?: number; readonly adapterClass?: "cpu" | "gpu" } = {},
): Promise<VaeEntries> {
  requireVaeRun(
    vaeRun,
    `its ${entries.join(" and ")} ${entries.length > 1 ? "entries are" : "entry is"} needed`,
  );
  const checkpoint = await loadCheckpoint(vaeRun);
  const info = checkpoint.run;
  const model: AnyModel = await loadSpec(info.spec.path);
  for (const entry of ["decode", ...entries] as const) {
    if (!model.entries?.[entry]) {
      throw new UsageError(`${info.spec.path} (VAE run ${vaeRun}) has no "${entry}" entry`);
    }
  }
  const dims = { ...model.dims, ...info.dims, ...(opts.batch ? { batch: opts.batch } : {}) };
  const plan = compile(model, {
    config: (info.config ?? {}) as Record<string, unknown>,
    dims,
    entries: [...new Set(entries)],
    adapterClass: opts.adapterClass ?? "cpu",
  });
  const params = new Map<string, Float32Array>();
  for (const p of plan.params) {
    const data = checkpoint.model.tensors.get(p.path)?.data;
    if (!(data instanceof Float32Array)) {
      throw new UsageError(`${checkpoint.path}: no f32 parameter "${p.path}" for ${info.spec.path}`);
    }
    params.set(p.path, data);
  }
  const shapes = vaeShapes(plan, `${info.spec.path} (VAE run ${vaeRun})`);
  return { vaeRun, spec: info.spec.path, step: info.step, plan, params, ...shapes };
}

/** Batch and shapes from the slots of the decode entry (z -> image), else of encode (x -> mean). */
function vaeShapes(plan: Plan, where: string): Pick<VaeEntries, "batch" | "pixel" | "latent"> {
  const entry: VaeEntry = plan.entries.decode ? "decode" : "encode";
  const e = plan.entries[entry]!;
  const slots = vaeSlots(plan, entry);
  const shapeOf = (name: string) => [...e.inputs, ...e.outputs].find((s) => s.name === name)!.shape;
  const [latent, pixel] = entry === "decode"
    ? [shapeOf(slots.input), shapeOf(slots.output)]
    : [shapeOf(slots.output), shapeOf(slots.input)];
  if (latent.length !== 4 || pixel.length !== 4) {
    throw new UsageError(`${where}: the latents and images must be NHWC [batch, side, side, channels]`);
  }
  const [batch, side, , channels] = latent as [number, number, number, number];
  const [, pSide, , pChannels] = pixel as [number, number, number, number];
  return { batch, latent: { side, channels }, pixel: { side: pSide, channels: pChannels } };
}

export interface LatentCodec {
  readonly vaeRun: string;
  /** The pixels the decoder gives: [channels, side, side]. */
  readonly pixel: { readonly side: number; readonly channels: number };
  /** One line for output: which run and step decode. */
  readonly describe: string;
  /** Model latents [C, s, s] (normalized) to pixels [3, S, S] in [-1, 1]. */
  decode(latents: readonly Float32Array[]): Promise<Float32Array[]>;
  /** Pixels [3, S, S] to model latents (the encoder's mean, normalized); needs "encode" opened. */
  encode(pixels: readonly Float32Array[]): Promise<Float32Array[]>;
  destroy(): void;
}

/** Opens the VAE of `latents` on the device for `entries` (decode always). */
export async function openLatentCodec(
  latents: LatentImages,
  entries: readonly VaeEntry[] = ["decode"],
): Promise<LatentCodec> {
  const scales = [...latents.mean, ...latents.std];
  if (
    latents.mean.length !== latents.channels || latents.std.length !== latents.channels ||
    !scales.every(Number.isFinite) || !latents.std.every((v) => v > 0)
  ) {
    throw new UsageError(
      `the latents of ${latents.vaeRun} declare ${latents.channels} channels but scale them by mean ` +
        `${JSON.stringify(latents.mean)} and std ${JSON.stringify(latents.std)} (one finite value per ` +
        `channel, std > 0, expected)`,
    );
  }
  const handle = await openDevice();
  const adapterClass = describeAdapter(handle).adapterClass;
  const vae = await compileVae(latents.vaeRun, ["decode", ...entries], { adapterClass });
  if (vae.latent.side !== latents.side || vae.latent.channels !== latents.channels) {
    throw new UsageError(
      `the VAE run ${latents.vaeRun} decodes ${vae.latent.channels}x${vae.latent.side}x${vae.latent.side} ` +
        `latents; the model's images are ${latents.channels}x${latents.side}x${latents.side}`,
    );
  }
  const executor = await Executor.create(vae.plan, { handle });
  await executor.setAllParams(vae.params);
  const { side, channels } = vae.latent;
  const P = vae.pixel;
  const run = (entry: VaeEntry) => {
    const slots = vaeSlots(vae.plan, entry);
    return async (x: Float32Array) =>
      (await executor.run(entry, { [slots.input]: x }))[slots.output] as Float32Array;
  };
  const decode = run("decode");
  const encode = vae.plan.entries.encode ? run("encode") : undefined;
  return {
    vaeRun: latents.vaeRun,
    pixel: { side: P.side, channels: P.channels },
    describe:
      `${channels}x${side}x${side} latents decoded by the VAE run ${latents.vaeRun} (step ${vae.step}) ` +
      `to ${P.side}x${P.side}x${P.channels} pixels`,
    async decode(images) {
      const z = images.map((v) => planesToPixels(unnormalize(v, latents, side), channels, side));
      const y = await inBatches(z, vae.batch, z[0]?.length ?? 0, P.side * P.side * P.channels, decode);
      return y.map((img) => pixelsToPlanes(img, P.channels, P.side));
    },
    async encode(pixels) {
      if (!encode) throw new Error(`the VAE of ${latents.vaeRun} was opened without its "encode" entry`);
      const x = pixels.map((v) => planesToPixels(v, P.channels, P.side));
      const z = await inBatches(x, vae.batch, P.side * P.side * P.channels, side * side * channels, encode);
      return z.map((img) => normalize(pixelsToPlanes(img, channels, side), latents, side));
    },
    destroy: () => executor.destroy(),
  };
}

/**
 * The latents a run's data declares, or undefined for pixel images (and for a run trained on
 * `--data` files, or whose data source fails for another reason: its images are shown as they are,
 * as runtime/generate/image_view.ts does). A missing VAE run is an error: its latents cannot be shown.
 */
export function runLatents(
  run: {
    readonly dir: string;
    readonly model: AnyModel;
    readonly config: unknown;
    readonly dims: Readonly<Record<string, number>>;
  },
): LatentImages | undefined {
  const data = run.model.data;
  if (!data) return undefined;
  try {
    Deno.statSync(`${run.dir}/${DATA_RECORD}`);
    return undefined; // --data replaced the spec's source with the user's own pixels
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    return data(run.config as never, run.dims).latents;
  } catch (e) {
    if (e instanceof VaeRunMissing) throw new UsageError(`${run.dir}: ${e.message}`);
    return undefined;
  }
}

/** A run's generated images as pixels: latents through their VAE's decoder, pixels as they are. */
export interface RunPixels {
  /** Side and channels of the pixels written. */
  readonly size: number;
  readonly channels: number;
  /** The decoder, for a latent run. */
  readonly codec?: LatentCodec;
  toPixels(images: readonly Float32Array[]): Promise<Float32Array[]>;
  destroy(): void;
}

/**
 * Opens what turns `run`'s images into pixels (before any sampling, so that a missing VAE run fails
 * first). `entries` adds "encode" for commands that read pictures.
 */
export async function openRunPixels(
  run: Parameters<typeof runLatents>[0] & {
    readonly config: { readonly image: { readonly size: number; readonly channels: number } };
  },
  entries: readonly VaeEntry[] = ["decode"],
): Promise<RunPixels> {
  const latents = runLatents(run);
  if (!latents) {
    const { size, channels } = run.config.image;
    return { size, channels, toPixels: (images) => Promise.resolve([...images]), destroy: () => {} };
  }
  const codec = await openLatentCodec(latents, entries);
  return {
    size: codec.pixel.side,
    channels: codec.pixel.channels,
    codec,
    toPixels: (images) => codec.decode(images),
    destroy: () => codec.destroy(),
  };
}
