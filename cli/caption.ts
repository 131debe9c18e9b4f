/**
 * `deno task caption <DIR> --image digit.png [--image more.png]... [--weights ema|raw]`
 *
 * Prints the run's greedy caption of each image, prepared for the view the run's data declares
 * (runtime/generate/image_view.ts). An MNIST run takes any 8-bit PNG (gray, RGB, with or without
 * alpha) brought to MNIST's form: luminance (alpha over black), inverted when the picture is mostly
 * light (dark ink on paper becomes light on dark), then scaled to fit 28x28 with its aspect ratio
 * kept (box filter, black margins). Any other run (its own pictures) takes a PNG or JPEG prepared as
 * its training pictures were: the centered square, area-resized to the model's size, gray or RGB as
 * the model is. Every image is read and decoded before the run is loaded, so a bad file fails fast; nothing is written anywhere. Control characters in a caption
 * are printed as escapes (\n), so each caption is one line. The moving-average weights are used when
 * the run kept them (`--weights raw`: the last step's). A run whose images are a VAE's latents
 * (`DataSource.latents`) captions what it was trained on: each picture is prepared at the VAE's pixel
 * size (RGB) and encoded by the VAE run's `encode` entry (its mean, normalized as training's latents).
 */
import { runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import { digitImage } from "../data/mnist_captions.ts";
import { decodePicture } from "../data/image_files.ts";
import { decodePng } from "../runtime/png.ts";
import { openRunPixels } from "../data/latent_codec.ts";
import { sequenceGeometry } from "../spec/transfusion/sequence.ts";
import { describeTemplate, imageFirstRow, templateImages } from "../spec/transfusion/rows.ts";
import {
  asUsageErrors,
  captionImages,
  DIGIT_SIDE,
  digitFromPng,
  followRows,
  frameFromPicture,
  type LoadedRun,
  loadRun,
  openSequenceModel,
  type PreparedDigit,
  runImageView,
  templateSteps,
  warnIfSpecChanged,
  weightsFlag,
} from "../runtime/generate/mod.ts";

export const CAPTION = command({
  name: "caption",
  args: "<DIR>",
  summary: "Prints the greedy caption the model of the run in DIR gives each image. An MNIST run " +
    "brings any 8-bit PNG to MNIST's form first (gray, light ink on dark, scaled to fit 28x28); a run on " +
    "other pictures reads a PNG or JPEG as its training pictures (centered square, resized). A run whose rows " +
    "hold several images takes the images in turn, a row's worth at a time, places them in its row " +
    "template (else image-first) and prints every text slot the model writes. A run on a VAE's latents " +
    "encodes each picture with that VAE run's encode entry first.",
  flags: {
    image: { type: "string", value: "FILE.png", multiple: true, required: true, help: "an image to caption" },
    weights: {
      type: "string",
      value: "ema|raw",
      help: "moving-average or last-step parameters",
      defaultText: "ema when the run kept it",
    },
  },
  examples: ["deno task caption runs/demo --image digit.png --image more.png"],
});

const USAGE = usageLine(CAPTION);

/**
 * The file's bytes, decoded once to check them before the run is loaded: a JPEG (which only
 * own-picture runs take) by the picture reader, anything else by the PNG reader the digit view
 * uses, so a broken file gets the message it always got.
 */
async function readPictureBytes(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--image ${path}: no such file`);
    if (e instanceof Deno.errors.IsADirectory) throw new UsageError(`--image ${path} is a directory`);
    throw new UsageError(`--image ${path} cannot be read: ${(e as Error).message}`);
  }
  const jpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  await asUsageErrors(() => Promise.resolve(jpeg ? decodePicture(bytes, path) : decodePng(bytes, path)));
  return bytes;
}

/** MNIST's form (see the header), with a note for each change made to the picture. */
async function digitImages(run: LoadedRun, files: readonly Uint8Array[], paths: readonly string[]) {
  const digits: PreparedDigit[] = [];
  for (const [i, bytes] of files.entries()) {
    digits.push(await asUsageErrors(() => Promise.resolve(digitFromPng(bytes, paths[i]!))));
  }
  digits.forEach((d, i) => {
    const changes = [
      ...(d.width !== DIGIT_SIDE || d.height !== DIGIT_SIDE
        ? [`scaled ${d.width}x${d.height} to 28x28`]
        : []),
      ...(d.inverted ? ["inverted (it was mostly light)"] : []),
    ];
    if (changes.length) console.error(`note: ${paths[i]}: ${changes.join(", ")}`);
  });
  return digits.map((d) =>
    digitImage({ images: d.pixels, labels: Int32Array.of(0), count: 1 }, 0, run.config.image)
  );
}

const ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Control characters (a poorly trained model may emit any byte) shown as escapes: one caption, one line. */
export function printable(caption: string): string {
  return caption.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommand(CAPTION, Deno.args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
  const paths = values.image ?? [];
  if (paths.length === 0) throw new UsageError(`--image is required\n${USAGE}`);
  const files: Uint8Array[] = [];
  for (const path of paths) files.push(await readPictureBytes(path));

  const weights = weightsFlag(values.weights);
  const run = await loadRun(dir, weights ? { weights } : {});
  try {
    warnIfSpecChanged(run);
    const images = await modelImages(run, files, paths);
    const g = sequenceGeometry(run.config);
    if (!run.config.row && g.N === 1) {
      const captions = await captionImages(run, images);
      captions.map(printable).forEach((c, i) => console.log(paths.length > 1 ? `${paths[i]}: ${c}` : c));
      return;
    }
    await captionRows(run, images, paths);
  } finally {
    run.destroy();
  }
}

/** The pictures as the model's images: digits, frames, or a latent run's VAE latents. */
async function modelImages(run: LoadedRun, files: readonly Uint8Array[], paths: readonly string[]) {
  const frames = (size: number, channels: number) =>
    asUsageErrors(() =>
      Promise.resolve(files.map((bytes, i) => frameFromPicture(bytes, paths[i]!, size, channels)))
    );
  const pixels = await openRunPixels(run, ["encode"]);
  try {
    if (pixels.codec) {
      const latents = await pixels.codec.encode(await frames(pixels.size, pixels.channels));
      console.error(
        `encoded ${paths.length} picture(s) at ${pixels.size}x${pixels.size} with the encode entry of the VAE ` +
          `run ${pixels.codec.vaeRun}`,
      );
      return latents;
    }
  } finally {
    pixels.destroy();
  }
  const { size, channels } = run.config.image;
  return await runImageView(run) === "digits"
    ? await digitImages(run, files, paths)
    : await frames(size, channels);
}

/**
 * Rows of several images: the images are taken in turn, as many per row as the row holds, and
 * placed in the run's row template (without one: image-first, the images then the caption slot);
 * the model writes every text slot (greedy). Prints each row's images and what it wrote.
 */
async function captionRows(run: LoadedRun, images: readonly Float32Array[], paths: readonly string[]) {
  const g = sequenceGeometry(run.config);
  const template = run.config.row ?? imageFirstRow(g.captionLength, g.N);
  const slots = templateImages(template).map((s) => s.name);
  if (images.length % slots.length !== 0) {
    throw new UsageError(
      `the run's rows hold ${slots.length} images (${describeTemplate(template)}); ` +
        `give a multiple of ${slots.length} --image files, got ${images.length}`,
    );
  }
  const rows = Array.from({ length: images.length / slots.length }, (_, r) => {
    const given = Object.fromEntries(slots.map((name, k) => [name, images[r * slots.length + k]!]));
    return { steps: templateSteps(template, given, g.tokenizer), id: r };
  });
  const model = await openSequenceModel(run, rows.length);
  const out = await asUsageErrors(() => followRows(model, { rows, seed: 0, image: { steps: 1, cfg: 0 } }));
  out.forEach((spans, r) => {
    const files = paths.slice(r * slots.length, (r + 1) * slots.length).join(" ");
    const texts = spans.flatMap((s) => (s.kind === "text" ? [`${s.name}: ${printable(s.text)}`] : []));
    console.log(`${files}: ${texts.join("; ")}`);
  });
}

if (import.meta.main) await runCli(main);
