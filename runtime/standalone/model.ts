/**
 * `openModel`: plan.json + a safetensors file -> a ready `Model`. The weights are checked against the
 * plan's parameters (header bounds, dtypes, names and shapes) before anything touches the GPU, so a
 * file of another spec or config fails with a message naming the tensors that differ.
 */
import type { Plan } from "../../compiler/plan.ts";
import { Executor } from "../executor.ts";
import { CheckpointError } from "../file_errors.ts";
import { checkAgainstParams, decodeSafetensors, type SafetensorsFile } from "../safetensors.ts";
import type { Image, Model, ModelInfo, WeightsSource } from "./api.ts";
import { createGenerator } from "./generation.ts";
import { modelValues, toGeneratedImage } from "./images.ts";
import { type ModulePlan, parseModulePlan } from "./plan_file.ts";
import { type LatentDecoder, openLatentDecoder } from "./latent_decoder.ts";

export async function openModel(planUrl: URL, weights: WeightsSource): Promise<Model> {
  const module = parseModulePlan(await readText(planUrl), planUrl.href);
  const { bytes, source } = await readWeights(weights);
  const file = decodeSafetensors(bytes, source);
  checkAgainstParams(file, module.plan.params, source);
  const executor = await Executor.create(withoutInit(module.plan));
  try {
    await executor.setAllParams(paramValues(file, module.plan, source));
  } catch (e) {
    executor.destroy();
    throw e;
  }
  let decoder: LatentDecoder | undefined;
  if (module.decoder) {
    // The VAE's weights travel with the module (a file next to plan.json), not with the user's.
    try {
      const url = new URL(module.decoder.weights, planUrl);
      const read = await readWeights(url);
      decoder = await openLatentDecoder(module.decoder, read.bytes, read.source);
    } catch (e) {
      executor.destroy();
      throw e;
    }
  }
  const config = { ...module.config, seq: module.plan.dims.seq ?? module.config.seq };
  const generator = createGenerator(executor, config);
  const { size, channels } = module.decoder?.pixels ?? config.image;
  const latent = module.decoder?.latent;
  return {
    info: { ...describe(module), generation: generator.kind },
    async generate(request) {
      const { text, images } = await generator.generate(request);
      if (!decoder) return { text, images: images.map((v) => toGeneratedImage(v, size, channels)) };
      const pictures = [];
      for (const v of images) {
        pictures.push({ ...toGeneratedImage(await decoder.decode(v), size, channels), latent: v });
      }
      return { text, images: pictures };
    },
    async caption(image: Image) {
      if (!decoder || !latent) return await generator.caption(modelValues(image, size, channels));
      // A generated image keeps its latent; any other picture is encoded as training's were.
      const own = (image as { latent?: unknown }).latent;
      const values = own instanceof Float32Array && own.length === latent.channels * latent.size ** 2
        ? own
        : await decoder.encode(modelValues(image, size, channels));
      return await generator.caption(values);
    },
    close: () => {
      executor.destroy();
      decoder?.destroy();
    },
  };
}

function describe(m: ModulePlan): Omit<ModelInfo, "generation"> {
  return {
    name: m.plan.model,
    batch: m.batch,
    seq: m.plan.dims.seq ?? m.config.seq,
    vocab: m.config.text.vocab,
    imageSize: m.decoder?.pixels.size ?? m.config.image.size,
    channels: m.decoder?.pixels.channels ?? m.config.image.channels,
    ...(m.decoder
      ? {
        latent: {
          size: m.decoder.latent.size,
          channels: m.decoder.latent.channels,
          vaeRun: m.decoder.vaeRun,
          step: m.decoder.step,
        },
      }
      : {}),
    parameters: m.plan.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0),
    entries: Object.keys(m.plan.entries),
  };
}

/** Parameters come from the weights file: skip the executor's seeded init. */
function withoutInit(plan: Plan): Plan {
  return { ...plan, params: plan.params.map((p) => ({ ...p, init: { kind: "zeros" } })) };
}

function paramValues(file: SafetensorsFile, plan: Plan, source: string): Map<string, ArrayLike<number>> {
  const values = new Map<string, ArrayLike<number>>();
  for (const p of plan.params) {
    const data = file.tensors.get(p.path)!.data;
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      throw new CheckpointError(`${source}: tensor "${p.path}" is a 64-bit integer; parameters never are`);
    }
    values.set(p.path, data);
  }
  return values;
}

async function readText(url: URL): Promise<string> {
  try {
    return url.protocol === "file:" ? await Deno.readTextFile(url) : await (await fetchOk(url)).text();
  } catch (e) {
    throw new CheckpointError(`cannot read the module plan ${url.href}: ${(e as Error).message}`);
  }
}

async function readWeights(weights: WeightsSource): Promise<{ bytes: Uint8Array; source: string }> {
  if (weights instanceof Uint8Array) return { bytes: weights, source: "the weights" };
  const source = weights instanceof URL ? weights.href : weights;
  try {
    const bytes = weights instanceof URL && weights.protocol !== "file:"
      ? new Uint8Array(await (await fetchOk(weights)).arrayBuffer())
      : await Deno.readFile(weights);
    return { bytes, source };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`weights file ${source} does not exist`);
    throw e;
  }
}

async function fetchOk(url: URL): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
  return response;
}
