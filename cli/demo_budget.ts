/**
 * The demo's time budget: its minutes cover training and both evaluations on any machine. The
 * training loop measures a few steps (runtime/train/budget.ts); at that step the demo draws a first
 * live grid (one digit per caption, OUT/live.png) and captions it, times both at their steady
 * pace, and extrapolates what the evaluation after training will cost, linearly in images and
 * captions (small batches cost more per image than the eval's larger ones, so this errs long). The
 * shipped checkpoint is evaluated before training, so its time is measured, not guessed. Training
 * gets what is left, and the grid is refreshed about once a minute.
 */
import { captionImages, DIGIT_SIDE, generateImages, trainingSession } from "../runtime/generate/mod.ts";
import { digitFromModelImage } from "../runtime/generate/images.ts";
import { encodePng } from "../runtime/png.ts";
import { imageGrid } from "../runtime/plots.ts";
import { type MeasuredPace, type SampleContext, stepsWithin } from "../runtime/train/mod.ts";
import { digitCaption } from "../data/mnist_captions.ts";
import { promptTemplate } from "../data/mod.ts";
import type { EvalSettings } from "./eval.ts";

/** How often the live grid is redrawn, in training seconds. */
const REFRESH_SECONDS = 60;

/** What the first live grid measured. */
export interface EvalCosts {
  /** Milliseconds per generated image and per caption, at the eval's sampler settings. */
  readonly msPerImage: number;
  readonly msPerCaption: number;
  /** Parameters of the trained model. */
  readonly params: number;
}

/** Milliseconds an evaluation with `s` is expected to take. */
export function evalMs(costs: EvalCosts, s: EvalSettings): number {
  return 10 * s.nPerDigit * costs.msPerImage + s.captions * costs.msPerCaption;
}

/**
 * Draws one sample per digit into `file` (PNG), prompted like the evaluation (`s.template`, else the
 * caption the spec trains on); returns the steady ms per image and per caption.
 */
export async function liveGrid(
  ctx: SampleContext,
  s: EvalSettings,
  file: string,
): Promise<{ msPerImage: number; msPerCaption: number }> {
  const run = trainingSession(ctx);
  const { size, channels } = run.config.image;
  const template = s.template ?? promptTemplate(run);
  const prompts = Array.from({ length: 10 }, (_, d) => digitCaption(d, template));
  // Steady costs, without the first run of each entry's pipelines (a one-off the eval does not
  // pay again): DDIM steps after the first, and captions after a first one.
  const stepEnds: number[] = [];
  const images = await generateImages(run, prompts, {
    steps: Math.min(s.steps, run.config.diffusion.T),
    cfg: s.cfg,
    seed: s.seed + ctx.step,
    onStep: () => stepEnds.push(performance.now()),
  });
  const steadySteps = stepEnds.length - 1;
  const msPerStep = steadySteps > 0 ? (stepEnds.at(-1)! - stepEnds[0]!) / steadySteps : NaN;
  await captionImages(run, images.slice(0, 1));
  const t1 = performance.now();
  await captionImages(run, images.slice(1));
  const t2 = performance.now();
  await writeDigitGrid(file, images.map((x) => digitFromModelImage(x, size, channels)));
  return {
    msPerImage: (msPerStep * stepEnds.length) / prompts.length,
    msPerCaption: (t2 - t1) / (images.length - 1),
  };
}

/**
 * Writes digits (28x28, in [0, 1]) as a PNG grid ten to a row, atomically (a viewer that reloads
 * the file never reads half of it).
 */
export async function writeDigitGrid(file: string, digits: readonly Float32Array[]): Promise<void> {
  const grid = imageGrid(digits, DIGIT_SIDE, DIGIT_SIDE, 10, { range: "unit" });
  const partial = `${file}.partial`;
  await Deno.writeFile(partial, encodePng(grid.rgba, grid.width, grid.height));
  await Deno.rename(partial, file);
}

/** The parameter count of a plan. */
export function paramCount(ctx: SampleContext): number {
  return ctx.plan.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * The sized run: the steps that fit before `deadline` after reserving both evaluations (and a
 * `marginMs` for saving and writing the report), and a refresh period of about a minute.
 */
export function sizeDemo(
  pace: MeasuredPace,
  deadline: number,
  reserveMs: number,
  marginMs: number,
): { steps: number; sampleEvery: number } {
  const steps = stepsWithin(pace, deadline, reserveMs + marginMs);
  return { steps, sampleEvery: Math.max(1, Math.round((REFRESH_SECONDS * 1000) / pace.msPerStep)) };
}
