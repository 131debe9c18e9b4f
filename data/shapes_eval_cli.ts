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
import { type ImageAutoencoder, openAutoencoder } from "./shapes_vae.ts";

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
  const dir = runDirOf(args);
  if (!dir) return false;
  try {
    const info = (await loadCheckpoint(dir)).run;
    const model = await loadSpec(info.spec.path);
    if (!model.data) return false;
    const config = resolveConfig(
      model.config,
      (info.config ?? {}) as Record<string, unknown>,
      info.spec.path,
    );
    return isShapesSource(model.data(config as never, { ...model.dims, ...info.dims }));
  } catch {
    return false;
  }
}

export async function shapesEvalMain(args: readonly string[]): Promise<void> {
  const { values, positionals } = parseCommand(SHAPES_EVAL, args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
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
  try {
    warnIfSpecChanged(run);
    const source = run.model.data!(run.config as never, run.dims) as ShapesSource;
    autoencoder = values.vae ? await openAutoencoder(values.vae) : undefined;
    const { result, samples, reconstructions } = await asUsageErrors(() =>
      evaluateShapes(runModel(run, source, sampling), source.dataset, {
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
      // Rows of `cols` inputs, each above its row of reconstructions.
      const cols = Math.min(8, reconstructions.inputs.length);
      const rows: Float32Array[] = [];
      for (let at = 0; at < reconstructions.inputs.length; at += cols) {
        const [ins, outs] = [
          reconstructions.inputs.slice(at, at + cols),
          reconstructions.outputs.slice(at, at + cols),
        ];
        const blank = new Float32Array(3 * S * S).fill(-1);
        const pad = (xs: Float32Array[]) => [...xs, ...Array<Float32Array>(cols - xs.length).fill(blank)];
        rows.push(...pad(ins), ...pad(outs));
      }
      await Deno.writeFile(`${out}/reconstructions.png`, rgbGridPng(rows, S, cols));
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
    run.destroy();
  }
}
