/**
 * Which view of images a run's commands use (spec/data.ts `ImageView`): "digits" only where the
 * run's data says its pictures are MNIST digits, "frame" (the model's own image) otherwise.
 *
 * Why the data decides: a model trained on the user's pictures has no digit in a padded frame, so
 * cropping a 28x28 gray digit out of it (and inverting and fitting user PNGs to 28x28) shows and
 * feeds it something it never saw; MNIST runs keep the digit view their evaluation and people expect.
 */
import type { ImageView } from "../../spec/data.ts";
import type { LoadedRun } from "./run.ts";

/** The file cli/train.ts writes in a run trained with `--data KIND:PATH`: `{"data": "KIND:PATH"}`. */
export const DATA_RECORD = "data.json";

/**
 * The view of `run`: "frame" when it was trained on `--data images:`/`jsonl:` (the user's pictures,
 * read from DIR/data.json without opening them again); otherwise what the spec's data source declares
 * (building it: MNIST's is in memory, a folder's is read once), "frame" when it declares nothing.
 */
export async function runImageView(
  run: Pick<LoadedRun, "dir" | "model" | "config" | "dims">,
): Promise<ImageView> {
  const recorded = await recordedData(run.dir);
  // Any --data replaced the spec's source with the user's own files, which never declare digits.
  if (recorded !== undefined) return "frame";
  const data = run.model.data;
  if (!data) return "frame";
  try {
    return data(run.config as never, run.dims).imageView ?? "frame";
  } catch (e) {
    // The spec's data cannot be built here (its files moved): its images are shown as they are.
    console.error(`note: the spec's data source failed (${(e as Error).message}); showing model frames`);
    return "frame";
  }
}

/** The `--data` a run recorded, or undefined when it trained on its spec's data. */
async function recordedData(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${DATA_RECORD}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const data = (JSON.parse(text) as { data?: unknown }).data;
  if (typeof data !== "string") throw new Error(`${dir}/${DATA_RECORD}: "data" is not a string`);
  return data;
}
