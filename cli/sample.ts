/**
 * `deno task sample <DIR> --prompt "a handwritten digit 3" [--n K] [--steps S]
 *    [--sampler ddpm|ddim|euler|heun] [--cfg W] [--seed S] [--cols C] [--out grid.png] [--weights ema|raw]`
 *
 * Generates K images for a prompt with the run's model and writes them as one PNG grid, in the view
 * the run's data declares (runtime/generate/image_view.ts): MNIST runs as 28x28 gray digits (the
 * padding cropped off), every other run in the model's own frame (size x size, RGB for 3 channels,
 * gray for 1); pixels mapped from [-1, 1] to [0, 255]. A run whose images are a VAE's latents (its data
 * declares them: `DataSource.latents`, examples/transfusion_latent.ts) writes the pictures the VAE
 * run's `decode` entry makes of them (32x32 RGB for vae_shapes), not the latents. Guidance: eps_u + W
 * (eps_c - eps_u), default W = 3; W = 0 or 1 turns it off (conditional rows only). Default sampler:
 * DDIM for DDPM models (50 steps; DDPM ancestral defaults to 250), Euler for flow matching (50).
 * The run's moving-average weights are used when it kept them (`--weights raw`: the last step's).
 * The same seed gives the same images. Nothing is written before every input has been checked.
 */
import { runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import { encodePng } from "../runtime/png.ts";
import { imageGrid } from "../runtime/plots.ts";
import { sequenceGeometry } from "../spec/transfusion/sequence.ts";
import { type RowTemplate, templateImages } from "../spec/transfusion/rows.ts";
import type { ImageView } from "../spec/data.ts";
import { openRunPixels, type RunPixels } from "../data/latent_codec.ts";
import {
  asUsageErrors,
  checkCaptionFits,
  defaultMethod,
  DIGIT_SIDE,
  digitFromModelImage,
  followRows,
  frameGridPng,
  generateImages,
  intFlag,
  type LoadedRun,
  loadRun,
  numberFlag,
  openSequenceModel,
  runImageView,
  samplerFlag,
  type SamplerMethod,
  templateSteps,
  usesGuidance,
  warnIfSpecChanged,
  weightsFlag,
} from "../runtime/generate/mod.ts";

export const SAMPLE = command({
  name: "sample",
  args: "<DIR>",
  summary: "Generates images for a prompt with the model of the run in DIR and writes them as one PNG " +
    "grid. The same seed gives the same images. A run whose rows hold several images (or its own row " +
    "template) draws every image of each row: one grid line per row, the prompt in its first text slot, " +
    "the texts the model wrote printed. A run on a VAE's latents writes the pictures that VAE run's " +
    "decode entry makes of them.",
  flags: {
    prompt: { type: "string", value: "TEXT", required: true, help: "the caption to draw" },
    n: { type: "string", value: "K", help: "how many images (1..1024)", defaultText: "8" },
    steps: {
      type: "string",
      value: "S",
      help: "sampler steps (capped at the run's T)",
      defaultText: "250 for ddpm, else 50",
    },
    sampler: {
      type: "string",
      value: "ddpm|ddim|euler|heun",
      help: "the sampler",
      defaultText: "ddim for DDPM runs, euler for flow matching",
    },
    cfg: {
      type: "string",
      value: "W",
      help: "classifier-free guidance weight; 0 or 1 turns it off",
      defaultText: "3",
    },
    seed: { type: "string", value: "S", help: "seed of the noise", defaultText: "0" },
    cols: { type: "string", value: "C", help: "images per row of the grid", defaultText: "min(K, 8)" },
    out: { type: "string", value: "FILE.png", help: "the grid to write", defaultText: "samples.png" },
    weights: {
      type: "string",
      value: "ema|raw",
      help: "moving-average or last-step parameters",
      defaultText: "ema when the run kept it",
    },
  },
  examples: [`deno task sample runs/demo --prompt "a handwritten digit 3" --n 16 --out three.png`],
});

const USAGE = usageLine(SAMPLE);

/** Default steps per sampler: the paper's 250 for DDPM ancestral, 50 otherwise (capped at the run's T). */
export function defaultSteps(method: SamplerMethod, T: number): number {
  return Math.min(method === "ddpm" ? 250 : 50, T);
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommand(SAMPLE, Deno.args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
  if (values.prompt === undefined) throw new UsageError(`--prompt is required\n${USAGE}`);
  const n = intFlag("n", values.n, 1, 1024) ?? 8;
  const requestedSteps = intFlag("steps", values.steps, 1);
  const requestedMethod = samplerFlag(values.sampler);
  const cfg = numberFlag("cfg", values.cfg, 0) ?? 3;
  const seed = intFlag("seed", values.seed, 0, 2 ** 32 - 1) ?? 0;
  const cols = intFlag("cols", values.cols, 1) ?? Math.min(n, 8);
  const out = values.out ?? "samples.png";
  if (!out.toLowerCase().endsWith(".png")) throw new UsageError(`--out must name a .png file, got "${out}"`);

  const weights = weightsFlag(values.weights);
  const run = await loadRun(dir, weights ? { weights } : {});
  try {
    warnIfSpecChanged(run);
    await asUsageErrors(() => Promise.resolve(checkCaptionFits(values.prompt!, run.config)));
    const method = requestedMethod ?? defaultMethod(run.config);
    const steps = requestedSteps ?? defaultSteps(method, run.config.diffusion.T);
    const started = performance.now();
    // Opened before sampling: a latent run whose VAE run is gone fails before any work.
    const pixels = await openRunPixels(run);
    try {
      const template = sequenceGeometry(run.config).template;
      const o = { prompt: values.prompt, n, method, steps, cfg, seed, cols, out, started };
      if (templateImages(template).length > 1 || template.spans[0]?.kind !== "text") {
        // A row of several images (or a template of its own): every image of each row, row by row.
        await sampleRows(run, template, pixels, o);
      } else await sampleImages(run, pixels, o);
    } finally {
      pixels.destroy();
    }
  } finally {
    run.destroy();
  }
}

interface SampleOptions {
  prompt: string;
  n: number;
  method: SamplerMethod;
  steps: number;
  cfg: number;
  seed: number;
  cols: number;
  out: string;
  started: number;
}

/** n images of the prompt (caption-first rows), one grid of `cols` columns. */
async function sampleImages(run: LoadedRun, pixels: RunPixels, o: SampleOptions): Promise<void> {
  const { n, method, steps, cfg, seed, out } = o;
  const progress = Deno.stderr.isTerminal();
  const images = await asUsageErrors(() =>
    generateImages(run, Array<string>(n).fill(o.prompt), {
      method,
      steps,
      cfg,
      seed,
      onStep: (p) => {
        if (progress) Deno.stderr.writeSync(new TextEncoder().encode(`\rstep ${p.step}/${p.of}`));
      },
    })
  );
  if (progress) console.error();
  const png = await gridPng(images, run, pixels, o.cols);
  const seconds = (performance.now() - o.started) / 1000;
  const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
  if (parent) await Deno.mkdir(parent, { recursive: true });
  await Deno.writeFile(out, png);
  console.log(
    `wrote ${out}: ${n} sample(s) of ${JSON.stringify(o.prompt)} (${method}, ${steps} steps, ` +
      `cfg ${cfg}, seed ${seed}) in ${seconds.toFixed(1)} s`,
  );
  if (pixels.codec) console.log(`  ${pixels.codec.describe}`);
}

/**
 * n rows of the run's template, the prompt in its first text slot: one grid line per row holding
 * every image of the row (cols = images per row), the texts the model wrote printed.
 */
async function sampleRows(
  run: LoadedRun,
  template: RowTemplate,
  pixels: RunPixels,
  o: SampleOptions,
): Promise<void> {
  const first = template.spans.find((s) => s.kind === "text");
  const g = sequenceGeometry(run.config);
  const given = first ? { [first.name]: o.prompt } : {};
  const steps = await asUsageErrors(() => Promise.resolve(templateSteps(template, given, g.tokenizer)));
  const model = await openSequenceModel(run, o.n * (usesGuidance(o.cfg) ? 2 : 1));
  const rows = await asUsageErrors(() =>
    followRows(model, {
      rows: Array.from({ length: o.n }, (_, id) => ({ steps, id })),
      seed: o.seed,
      image: { method: o.method, steps: o.steps, cfg: o.cfg },
    })
  );
  const names = templateImages(template).map((s) => s.name);
  const images = rows.flatMap((spans) => spans.flatMap((s) => (s.kind === "image" ? [s.pixels] : [])));
  const png = await gridPng(images, run, pixels, names.length);
  const parent = o.out.includes("/") ? o.out.slice(0, o.out.lastIndexOf("/")) : "";
  if (parent) await Deno.mkdir(parent, { recursive: true });
  await Deno.writeFile(o.out, png);
  const seconds = (performance.now() - o.started) / 1000;
  console.log(
    `wrote ${o.out}: ${o.n} row(s) of ${names.length} image(s) (${
      names.join(", ")
    }), one row per grid line, ` +
      `prompt ${
        JSON.stringify(o.prompt)
      } in "${first?.name}" (${o.method}, ${o.steps} steps, cfg ${o.cfg}, ` +
      `seed ${o.seed}) in ${seconds.toFixed(1)} s`,
  );
  rows.forEach((spans, k) => {
    const written = spans.filter((s) => s.kind === "text" && s.written);
    if (written.length === 0) return;
    const shown = written.map((s) => `${s.name} ${JSON.stringify(s.kind === "text" ? s.text : "")}`);
    console.log(`  row ${k + 1} wrote ${shown.join(", ")}`);
  });
  if (pixels.codec) console.log(`  ${pixels.codec.describe}`);
}

/**
 * Model images as the PNG grid of the run's view: MNIST digits (as ever) or the model's frames, a
 * latent run's decoded to its VAE's pixels first.
 */
async function gridPng(
  images: readonly Float32Array[],
  run: LoadedRun,
  pixels: RunPixels,
  cols: number,
): Promise<Uint8Array> {
  if (pixels.codec) {
    return frameGridPng(await pixels.toPixels(images), pixels.size, pixels.channels, cols);
  }
  const image = run.config.image;
  const view: ImageView = await runImageView(run);
  if (view === "frame") return frameGridPng(images, image.size, image.channels, cols);
  const digits = images.map((x) => digitFromModelImage(x, image.size, image.channels));
  const grid = imageGrid(digits, DIGIT_SIDE, DIGIT_SIDE, cols, { range: "unit" });
  return encodePng(grid.rgba, grid.width, grid.height);
}

if (import.meta.main) await runCli(main);
