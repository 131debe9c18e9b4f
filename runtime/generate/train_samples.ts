/**
 * Samples during training (`deno task train --sample-every N`) for Transfusion specs: one image per
 * digit caption, drawn with the training executor between two steps (its plan holds the "denoise"
 * entry at the training batch), written as DIR/samples/step_<step>.png. Importing this module
 * registers the hook.
 */
import { digitCaption } from "../../data/mnist_captions.ts";
import { promptTemplate } from "../../data/digit_eval.ts";
import { encodePng } from "../png.ts";
import { imageGrid } from "../plots.ts";
import { registerSampleHook, type SampleContext } from "../train/sample_hooks.ts";
import { DIGIT_SIDE, digitFromModelImage } from "./images.ts";
import { trainingSession } from "./run.ts";
import { generateImages } from "./transfusion.ts";

/** Few steps: a progress picture, not an evaluation. */
const STEPS = 20;
const GUIDANCE = 3;

export async function transfusionSampleHook(ctx: SampleContext): Promise<void> {
  const session = trainingSession(ctx);
  const { config } = session;
  // The caption the spec trains on: the demo's CPU spec holds only the digit ("7").
  const template = promptTemplate(session);
  const prompts = Array.from({ length: 10 }, (_, d) => digitCaption(d, template));
  const steps = Math.min(STEPS, config.diffusion.T);
  const images = await generateImages(session, prompts, { steps, cfg: GUIDANCE, seed: 0 });
  const digits = images.map((x) => digitFromModelImage(x, config.image.size, config.image.channels));
  const grid = imageGrid(digits, DIGIT_SIDE, DIGIT_SIDE, 10, { range: "unit" });
  await Deno.mkdir(`${ctx.dir}/samples`, { recursive: true });
  const file = `${ctx.dir}/samples/step_${String(ctx.step).padStart(6, "0")}.png`;
  await Deno.writeFile(file, encodePng(grid.rgba, grid.width, grid.height));
}

registerSampleHook((m) => Boolean(m.entries?.denoise && m.entries?.logits), transfusionSampleHook);
