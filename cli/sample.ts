/**
 * `deno task sample <DIR> --prompt "a handwritten digit 3" [--n K] [--steps S]
 *    [--sampler ddpm|ddim|euler|heun] [--cfg W] [--seed S] [--cols C] [--out grid.png] [--weights ema|raw]`
 *
 * Generates K images for a prompt with the run's model and writes them as one PNG grid (28x28 gray
 * digits: the padding is cropped off, pixels mapped from [-1, 1] to [0, 1]). Guidance: eps_u + W
 * (eps_c - eps_u), default W = 3; W = 0 or 1 turns it off (conditional rows only). Default sampler:
 * DDIM for DDPM models (50 steps; DDPM ancestral defaults to 250), Euler for flow matching (50).
 * The run's moving-average weights are used when it kept them (`--weights raw`: the last step's).
 * The same seed gives the same images. Nothing is written before every input has been checked.
 */
import { runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import { encodePng } from "../runtime/png.ts";
import { imageGrid } from "../runtime/plots.ts";
import {
  asUsageErrors,
  checkCaptionFits,
  defaultMethod,
  DIGIT_SIDE,
  digitFromModelImage,
  generateImages,
  intFlag,
  loadRun,
  numberFlag,
  samplerFlag,
  type SamplerMethod,
  warnIfSpecChanged,
  weightsFlag,
} from "../runtime/generate/mod.ts";

export const SAMPLE = command({
  name: "sample",
  args: "<DIR>",
  summary: "Generates images for a prompt with the model of the run in DIR and writes them as one PNG " +
    "grid. The same seed gives the same images.",
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
    const progress = Deno.stderr.isTerminal();
    const images = await asUsageErrors(() =>
      generateImages(run, Array<string>(n).fill(values.prompt!), {
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
    const seconds = (performance.now() - started) / 1000;
    const { image } = run.config;
    const digits = images.map((x) => digitFromModelImage(x, image.size, image.channels));
    const grid = imageGrid(digits, DIGIT_SIDE, DIGIT_SIDE, cols, { range: "unit" });
    const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
    if (parent) await Deno.mkdir(parent, { recursive: true });
    await Deno.writeFile(out, encodePng(grid.rgba, grid.width, grid.height));
    console.log(
      `wrote ${out}: ${n} sample(s) of ${JSON.stringify(values.prompt)} (${method}, ${steps} steps, ` +
        `cfg ${cfg}, seed ${seed}) in ${seconds.toFixed(1)} s`,
    );
  } finally {
    run.destroy();
  }
}

if (import.meta.main) await runCli(main);
