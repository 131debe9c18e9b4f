/**
 * `deno task eval <DIR>` for a run trained on the shapes dataset (cli/eval.ts dispatches here when the
 * run's spec draws its data from data/shapes.ts):
 *
 *   deno task eval <DIR> [--json] [--generate K] [--captions K] [--steps S] [--sampler M] [--cfg W]
 *     [--seed S] [--loss-batches N] [--weights ema|raw] [--vae RUN] [--reconstruct N] [--out DIR]
 *
 * Prints the figures of data/shapes_eval.ts; writes to --out (default DIR/eval): generated_heldout.png
 * and generated_seen.png (8 to a row, in the order of prompts.txt), reconstructions.png with --vae
 * (held-out images, each row of inputs above its reconstructions) and eval.json.
 *
 * A run of an autoencoder trained on the shapes images (data/shapes_images.ts, examples/vae_shapes.ts)
 * gets the reconstruction part alone: `deno task eval <VAE_RUN> [--json] [--reconstruct N] [--out DIR]`
 * reconstructs the first N held-out scenes (default 64) and reports MSE and PSNR, with
 * reconstructions.png and eval.json.
 */
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { loadSpec, UsageError } from "../cli/load_spec.ts";
import { command, parseCommand, usageLine } from "../cli/usage.ts";
import { resolveConfig } from "../spec/config.ts";
import {
  asUsageErrors,
  intFlag,
  loadRun,
  numberFlag,
  samplerFlag,
  warnIfSpecChanged,
  weightsFlag,
} from "../runtime/generate/mod.ts";
import { isShapesSource, type ShapesSource } from "./shapes.ts";
import { evaluateShapes, formatShapesEval, runModel } from "./shapes_eval.ts";
import { rgbGridPng } from "./shapes_png.ts";
import { type ImageAutoencoder, openAutoencoder, reconstructionError } from "./shapes_vae.ts";
import { isShapesImageSource } from "./shapes_images.ts";
import type { DataSource } from "../spec/data.ts";

export const SHAPES_EVAL = command({
  name: "eval",
  args: "<DIR>",
  summary: "For a run trained on the shapes dataset (data/shapes.ts): generated-image accuracy on seen " +
    "and held-out prompts, captioning accuracy and held-out losses; grids and eval.json go to --out.",
  flags: {
    json: { type: "boolean", default: false, help: "print one JSON object and nothing else on stdout" },
    generate: { type: "string", value: "K", help: "images to generate per prompt set", defaultText: "32" },
    captions: { type: "string", value: "K", help: "held-out images to caption", defaultText: "32" },
    steps: { type: "string", value: "S", help: "sampler steps", defaultText: "50" },
    sampler: { type: "string", value: "ddpm|ddim|euler|heun", help: "the sampler", defaultText: "the run's" },
    cfg: { type: "string", value: "W", help: "classifier-free guidance weight", defaultText: "3" },
    seed: { type: "string", value: "S", help: "seed of the noise", defaultText: "0" },
    "loss-batches": {
      type: "string",
      value: "N",
      help: "eval batches for the held-out losses",
      defaultText: "10",
    },
    weights: {
      type: "string",
      value: "ema|raw",
      help: "moving-average or last-step parameters",
      defaultText: "ema when the run kept it",
    },
    vae: { type: "string", value: "RUN", help: "an autoencoder run: also write reconstructions.png" },
    reconstruct: {
      type: "string",
      value: "N",
      help: "held-out images to reconstruct with --vae",
      defaultText: "64",
    },
    out: { type: "string", value: "DIR", help: "where the grids and eval.json go", defaultText: "DIR/eval" },
  },
  examples: ["deno task eval runs/shapes --generate 16 --vae runs/shapes-vae"],
});

const USAGE = usageLine(SHAPES_EVAL);

/**
 * The run directory of an eval command line: the first argument that is neither a flag nor a flag's
 * value. Every flag of both evaluations takes a value except --json (a flag=value takes none).
 */
function runDirOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("-")) return a;
    if (a.startsWith("--") && !a.includes("=") && a !== "--json") i++;
  }
  return undefined;
}

/**
 * Whether the eval command line names a run whose spec trains on the shapes dataset. Anything that
 * fails here (no such run, a broken spec) says no: the MNIST evaluation then reports it properly.
 */
export async function evaluatesShapes(args: readonly string[]): Promise<boolean> {
  const source = await runSource(args);
  return isShapesSource(source) || isShapesImageSource(source);
}

/** The data source of the run the command line names, or undefined where anything fails. */
async function runSource(args: readonly string[]): Promise<DataSource | undefined> {
  const dir = runDirOf(args);
  if (!dir) return undefined;
  try {
    const info = (await loadCheckpoint(dir)).run;
    const model = await loadSpec(info.spec.path);
    if (!model.data) return undefined;
    const config = resolveConfig(
      model.config,
      (info.config ?? {}) as Record<string, unknown>,
      info.spec.path,
    );
    return model.data(config as never, { ...model.dims, ...info.dims });
  } catch {
    return undefined;
  }
}

/** Rows of `cols` inputs, each above its row of reconstructions, as one PNG. */
function reconstructionGrid(inputs: Float32Array[], outputs: Float32Array[], S: number): Uint8Array {
  const cols = Math.min(8, inputs.length);
  const rows: Float32Array[] = [];
  for (let at = 0; at < inputs.length; at += cols) {
    const [ins, outs] = [inputs.slice(at, at + cols), outputs.slice(at, at + cols)];
    const blank = new Float32Array(3 * S * S).fill(-1);
    const pad = (xs: Float32Array[]) => [...xs, ...Array<Float32Array>(cols - xs.length).fill(blank)];
    rows.push(...pad(ins), ...pad(outs));
  }
  return rgbGridPng(rows, S, cols);
}

/** `deno task eval <VAE_RUN>`: reconstruction error of held-out scenes through encode and decode. */
async function autoencoderEvalMain(
  dir: string,
  values: { json?: boolean; reconstruct?: string; out?: string },
): Promise<void> {
  const source = await runSource([dir]);
  if (!isShapesImageSource(source)) throw new UsageError(`${dir}: not a run trained on the shapes images`);
  const count = intFlag("reconstruct", values.reconstruct, 1, source.dataset.heldOutScenes) ?? 64;
  const out = values.out ?? `${dir}/eval`;
  const autoencoder = await openAutoencoder(dir);
  try {
    const { dataset } = source;
    const inputs = Array.from({ length: count }, (_, i) => dataset.image(dataset.scene("held-out", i)));
    const outputs = await autoencoder.reconstruct(inputs);
    const error = reconstructionError(inputs, outputs);
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeFile(
      `${out}/reconstructions.png`,
      reconstructionGrid(inputs, outputs, dataset.settings.size),
    );
    const step = (await loadCheckpoint(dir)).run.step;
    const json = { run: dir, step, heldOutScenes: count, reconstruction: error };
    await Deno.writeTextFile(`${out}/eval.json`, JSON.stringify(json, null, 2) + "\n");
    console.log(
      values.json
        ? JSON.stringify(json)
        : `${dir} at step ${step}: ${count} held-out scenes reconstructed, ` +
          `MSE ${error.mse.toFixed(4)} (on [-1, 1]), PSNR ${error.psnr.toFixed(2)} dB\nwrote ${out}/`,
    );
  } finally {
    autoencoder.destroy();
  }
}

export async function shapesEvalMain(args: readonly string[]): Promise<void> {
  const { values, positionals } = parseCommand(SHAPES_EVAL, args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
  if (isShapesImageSource(await runSource([dir]))) return await autoencoderEvalMain(dir, values);
  const method = samplerFlag(values.sampler);
  const sampling = {
    steps: intFlag("steps", values.steps, 1) ?? 50,
    cfg: numberFlag("cfg", values.cfg, 0) ?? 3,
    seed: intFlag("seed", values.seed, 0, 2 ** 32 - 1) ?? 0,
    lossBatches: intFlag("loss-batches", values["loss-batches"], 0) ?? 10,
    ...(method ? { method } : {}),
  };
  const generate = intFlag("generate", values.generate, 1, 10000) ?? 32;
  const captions = intFlag("captions", values.captions, 0, 10000) ?? 32;
  const reconstruct = intFlag("reconstruct", values.reconstruct, 1, 10000) ?? 64;
  const out = values.out ?? `${dir}/eval`;
  const weights = weightsFlag(values.weights);
  const log = (line: string) => console.error(line);

  const run = await loadRun(dir, weights ? { weights } : {});
  let autoencoder: ImageAutoencoder | undefined;
  let decoder:
    | { decode(images: readonly Float32Array[]): Promise<Float32Array[]>; destroy(): void }
    | undefined;
  try {
    warnIfSpecChanged(run);
    const source = run.model.data!(run.config as never, run.dims) as ShapesSource;
    autoencoder = values.vae ? await openAutoencoder(values.vae) : undefined;
    // Latent images (data/shapes_latents.ts): generated latents are decoded to pixels for the checker.
    decoder = await source.dataset.images?.openDecoder?.();
    const model = runModel(run, source, sampling);
    const shapesModel = decoder
      ? { ...model, generate: async (c: readonly string[]) => await decoder!.decode(await model.generate(c)) }
      : model;
    const { result, samples, reconstructions } = await asUsageErrors(() =>
      evaluateShapes(shapesModel, source.dataset, {
        generate,
        captions,
        reconstruct,
        log,
        ...(autoencoder ? { autoencoder } : {}),
      })
    );
    const S = source.dataset.settings.size;
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeFile(
      `${out}/generated_heldout.png`,
      rgbGridPng(samples.slice(0, generate).map((s) => s.image), S, 8),
    );
    await Deno.writeFile(
      `${out}/generated_seen.png`,
      rgbGridPng(samples.slice(generate).map((s) => s.image), S, 8),
    );
    await Deno.writeTextFile(`${out}/prompts.txt`, samples.map((s) => s.caption).join("\n") + "\n");
    if (reconstructions) {
      await Deno.writeFile(
        `${out}/reconstructions.png`,
        reconstructionGrid(reconstructions.inputs, reconstructions.outputs, S),
      );
    }
    const json = {
      run: run.dir,
      spec: run.specPath,
      step: run.info.step,
      weights: run.weights,
      sampling: { ...sampling, method: method ?? "default" },
      ...result,
      captioning: { ...result.captioning, examples: result.captioning.examples.slice(0, 20) },
      ...(values.vae ? { vae: values.vae } : {}),
    };
    await Deno.writeTextFile(`${out}/eval.json`, JSON.stringify(json, null, 2) + "\n");
    console.log(
      values.json
        ? JSON.stringify(json)
        : `${run.dir} at step ${run.info.step}, ${run.weights} weights\n${
          formatShapesEval(result)
        }\nwrote ${out}/`,
    );
  } finally {
    autoencoder?.destroy();
    decoder?.destroy();
    run.destroy();
  }
}
