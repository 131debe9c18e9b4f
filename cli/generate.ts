/**
 * `deno task generate <DIR> [--row '...'] [--prompt TEXT] [--n K] ...`
 *
 * One generate for every run with a `logits` entry. A text-only language model (its logits entry
 * reads only tokens and the layout, e.g. examples/text_lm.ts) continues `--prompt` (after BOS when its vocabulary has one; marked as the prefix
 * when its logits entry reads `layout_prefix`, as examples/prefix_lm.ts trains). A
 * Transfusion run follows its row template (config `row`, else caption-first: the caption slot then
 * imagesPerRow images) span by span: texts given in `--row` (or `--prompt`, for the first text
 * slot) are written in as training lays them out, the other text slots are written by the model,
 * images are drawn (or read from a PNG or JPEG, prepared in the run's image view). Every image is written as a PNG, every row's texts are
 * printed, and OUT/generated.json lists both. Nothing is written before every input is checked.
 * A run whose images are a VAE's latents (`DataSource.latents`) writes the pictures its VAE run's
 * `decode` entry makes of them, and encodes a given picture with its `encode` entry first.
 */
import { runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import { digitImage } from "../data/mnist_captions.ts";
import { sequenceGeometry } from "../spec/transfusion/sequence.ts";
import type { ImageView } from "../spec/data.ts";
import { openRunPixels, type RunPixels } from "../data/latent_codec.ts";
import { ByteTokenizer, textTokenizer } from "../runtime/tokenizer.ts";
import { imageToPng, toGeneratedImage } from "../runtime/standalone/images.ts";
import {
  asUsageErrors,
  defaultMethod,
  digitFromPng,
  followRows,
  frameFromPicture,
  generateText,
  intFlag,
  isTextModel,
  type LoadedRun,
  loadRun,
  matchRow,
  numberFlag,
  openSequenceModel,
  parseRowSpec,
  runImageView,
  samplerFlag,
  templateSteps,
  type TextSampling,
  usesGuidance,
  warnIfSpecChanged,
  weightsFlag,
} from "../runtime/generate/mod.ts";
import { defaultSteps } from "./sample.ts";

export const GENERATE = command({
  name: "generate",
  args: "<DIR>",
  summary: "Generates with the run in DIR: text from any spec with a logits entry (text-only language " +
    "models too), and for Transfusion runs whole rows of the run's row template: given texts written " +
    "in, the other text slots written by the model, every image drawn and written as a PNG (a run on a " +
    "VAE's latents: the picture that VAE run's decode entry makes of it).",
  flags: {
    row: {
      type: "string",
      value: "SPANS",
      help: `the row to follow, e.g. 'text:"a 3" image text:"and a 7" image' (see below)`,
      defaultText: "every text written by the model, every image drawn",
    },
    prompt: {
      type: "string",
      value: "TEXT",
      help: "text LMs: the text to continue; Transfusion: the first text slot (when --row is not given)",
    },
    n: {
      type: "string",
      value: "K",
      help: "how many rows (1..256); row k draws its own noise",
      defaultText: "1",
    },
    "max-tokens": {
      type: "string",
      value: "N",
      help: "text LMs: tokens to sample at most",
      defaultText: "up to the end of the row",
    },
    temperature: {
      type: "string",
      value: "T",
      help: "text sampling temperature; 0 is greedy",
      defaultText: "0",
    },
    "top-k": { type: "string", value: "K", help: "sample among the K likeliest tokens" },
    "top-p": { type: "string", value: "P", help: "sample among the likeliest tokens holding mass P" },
    steps: {
      type: "string",
      value: "S",
      help: "sampler steps per image",
      defaultText: "250 for ddpm, else 50",
    },
    sampler: {
      type: "string",
      value: "ddpm|ddim|euler|heun",
      help: "the image sampler",
      defaultText: "ddim for DDPM runs, euler for flow matching",
    },
    cfg: {
      type: "string",
      value: "W",
      help: "classifier-free guidance weight; 0 or 1 turns it off",
      defaultText: "3",
    },
    seed: { type: "string", value: "S", help: "seed of the noise and the text sampling", defaultText: "0" },
    scale: {
      type: "string",
      value: "F",
      help: "each image pixel becomes F x F PNG pixels",
      defaultText: "4",
    },
    out: {
      type: "string",
      value: "DIR",
      help: "where the PNGs and generated.json go",
      defaultText: "generated",
    },
    weights: {
      type: "string",
      value: "ema|raw",
      help: "moving-average or last-step parameters",
      defaultText: "ema when the run kept it",
    },
  },
  examples: [
    `deno task generate runs/two --row 'text:"a 3" image text:"and a 7" image' --out two`,
    `deno task generate runs/two --row 'between:"and a 7"' --n 4`,
    `deno task generate runs/demo --prompt "a handwritten digit 5"`,
    `deno task generate runs/text_lm --prompt "a handwritten" --max-tokens 16`,
  ],
  notes: [
    `--row lists the spans of the run's row template in order, separated by spaces: text:"..." ` +
    `(a text slot holding this text; JSON string syntax, \\" inside), text (a slot the model writes), ` +
    `image (an image the model draws), image:FILE.png (an image given, brought to the model's frame ` +
    `as caption does). Or name spans instead: caption:"a 3" between:"and a 7"; the spans not named are ` +
    `written or drawn. The run prints its template when --row does not fit it.`,
    `Files: OUT/<span>.png per image (OUT/row<k>_<span>.png with --n > 1) and OUT/generated.json ` +
    `(every row's spans: texts, whether given or written, image files).`,
  ],
});

const USAGE = usageLine(GENERATE);

async function main(): Promise<void> {
  const { values, positionals } = parseCommand(GENERATE, Deno.args);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError(USAGE);
  const n = intFlag("n", values.n, 1, 256) ?? 1;
  const seed = intFlag("seed", values.seed, 0, 2 ** 32 - 1) ?? 0;
  const scale = intFlag("scale", values.scale, 1, 64) ?? 4;
  const out = values.out ?? "generated";
  const text: TextSampling = {
    ...(values.temperature === undefined
      ? {}
      : { temperature: numberFlag("temperature", values.temperature, 0)! }),
    ...(values["top-k"] === undefined ? {} : { topK: intFlag("top-k", values["top-k"], 1)! }),
    ...(values["top-p"] === undefined ? {} : { topP: numberFlag("top-p", values["top-p"], 0)! }),
  };
  const weights = weightsFlag(values.weights);
  const run = await loadRun(dir, { requires: ["logits"], ...(weights ? { weights } : {}) });
  try {
    warnIfSpecChanged(run);
    const started = performance.now();
    const rows = run.model.entries?.denoise
      ? await asUsageErrors(() => followRun(run, values, { n, seed, text, scale, out }))
      : await asUsageErrors(() => textRun(run, values, { n, seed, text, out }));
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeTextFile(`${out}/generated.json`, JSON.stringify(rows, null, 2) + "\n");
    console.log(
      `wrote ${out}/generated.json (${n} row(s)) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    run.destroy();
  }
}

type Values = ReturnType<typeof parseCommand<typeof GENERATE.flags>>["values"];

/** A text-only model: (BOS,) the prompt, then up to --max-tokens sampled tokens per row. */
async function textRun(
  run: LoadedRun,
  values: Values,
  o: { n: number; seed: number; text: TextSampling; out: string },
) {
  if (values.row !== undefined) {
    throw new UsageError(`--row needs a Transfusion run; ${run.specPath} has no denoise entry`);
  }
  const { executor } = await run.entry("logits", o.n);
  if (!isTextModel(executor)) {
    throw new UsageError(`${run.specPath}: its logits entry takes more than tokens and layout fields`);
  }
  // The run's tokenizer (bytes or its BPE) when its config says; bytes with PAD otherwise.
  const tokenizer = run.config.text
    ? textTokenizer(run.config.text, run.specPath)
    : new ByteTokenizer({ pad: true });
  const prompt = [...tokenizer.encode(values.prompt ?? "")];
  const seq = executor.plan.dims.seq ?? run.config.seq;
  const maxTokens = intFlag("max-tokens", values["max-tokens"], 0) ?? seq - 1 - prompt.length;
  const rows = await generateText(executor, {
    prompts: Array.from({ length: o.n }, () => prompt),
    maxTokens,
    seed: o.seed,
    text: o.text,
    tokenizer,
  });
  rows.forEach((r, k) => {
    console.log(
      `${o.n > 1 ? `row ${k + 1}: ` : ""}${JSON.stringify((values.prompt ?? "") + r.text)} (${r.finish})`,
    );
  });
  return rows.map((r) => ({ prompt: values.prompt ?? "", text: r.text, tokens: r.tokens, finish: r.finish }));
}

/** A Transfusion run: n rows of its template, every image a PNG under `out`. */
async function followRun(
  run: LoadedRun,
  values: Values,
  o: { n: number; seed: number; text: TextSampling; scale: number; out: string },
) {
  const g = sequenceGeometry(run.config);
  const template = g.template;
  const given = matchRow(values.row === undefined ? [] : parseRowSpec(values.row), template);
  if (values.prompt !== undefined) {
    if (values.row !== undefined) throw new UsageError("give the texts in --row, or --prompt; not both");
    const first = template.spans.find((s) => s.kind === "text");
    if (!first) throw new UsageError(`--prompt: the row template has no text slot`);
    given.texts[first.name] = values.prompt;
  }
  const reads = Object.keys(given.images).length > 0;
  // A latent run's VAE, opened first: a missing VAE run fails before any sampling.
  const pixels = await openRunPixels(run, reads ? ["encode"] : []);
  try {
    return await followWith(run, values, o, given, pixels);
  } finally {
    pixels.destroy();
  }
}

async function followWith(
  run: LoadedRun,
  values: Values,
  o: { n: number; seed: number; text: TextSampling; scale: number; out: string },
  given: ReturnType<typeof matchRow>,
  pixels: RunPixels,
) {
  const g = sequenceGeometry(run.config);
  const template = g.template;
  const images: Record<string, Float32Array> = {};
  const view = Object.keys(given.images).length ? await runImageView(run) : "frame";
  for (const [name, file] of Object.entries(given.images)) {
    images[name] = await readImage(file, run, view, pixels);
  }
  const steps = templateSteps(template, { ...given.texts, ...images }, g.tokenizer);
  const method = samplerFlag(values.sampler) ?? defaultMethod(run.config);
  const image = {
    method,
    steps: intFlag("steps", values.steps, 1) ?? defaultSteps(method, run.config.diffusion.T),
    cfg: numberFlag("cfg", values.cfg, 0) ?? 3,
  };
  const model = await openSequenceModel(run, o.n * (usesGuidance(image.cfg) ? 2 : 1));
  const rows = await followRows(model, {
    rows: Array.from({ length: o.n }, (_, id) => ({ steps, id })),
    seed: o.seed,
    text: o.text,
    image,
  });
  await Deno.mkdir(o.out, { recursive: true });
  const { size, channels } = pixels;
  const report = [];
  for (const [k, spans] of rows.entries()) {
    const shown: Record<string, unknown>[] = [];
    const line: string[] = [];
    for (const s of spans) {
      if (s.kind === "text") {
        shown.push({ name: s.name, text: s.text, written: s.written });
        line.push(`${s.name} ${JSON.stringify(s.text)} (${s.written ? "written" : "given"})`);
        continue;
      }
      const file = `${o.out}/${o.n > 1 ? `row${k + 1}_` : ""}${s.name}.png`;
      if (s.drawn) {
        const [shown] = await pixels.toPixels([s.pixels]);
        await Deno.writeFile(file, imageToPng(toGeneratedImage(shown!, size, channels), { scale: o.scale }));
      }
      shown.push({ name: s.name, image: s.drawn ? file : given.images[s.name], drawn: s.drawn });
      line.push(s.drawn ? `${s.name} -> ${file}` : `${s.name} (given ${given.images[s.name]})`);
    }
    console.log(`${o.n > 1 ? `row ${k + 1}: ` : ""}${line.join("; ")}`);
    report.push({ spans: shown });
  }
  console.error(
    `(${image.method}, ${image.steps} steps, cfg ${image.cfg}, seed ${o.seed}; template ` +
      `${template.spans.map((s) => s.name).join(" ")})`,
  );
  if (pixels.codec) console.log(`images: ${pixels.codec.describe}`);
  return report;
}

/**
 * A picture brought to the model's image as `deno task caption` does, in the run's view: MNIST's
 * digit form for MNIST runs, the training pictures' preparation (crop + area resize) otherwise; a
 * latent run's prepared at its VAE's pixel size and encoded.
 */
async function readImage(
  file: string,
  run: LoadedRun,
  view: ImageView,
  pixels: RunPixels,
): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new UsageError(`--row image:${file} cannot be read: ${(e as Error).message}`);
  }
  if (pixels.codec) {
    const picture = await asUsageErrors(() =>
      Promise.resolve(frameFromPicture(bytes, file, pixels.size, pixels.channels))
    );
    return (await pixels.codec.encode([picture]))[0]!;
  }
  const { size, channels } = run.config.image;
  if (view === "frame") {
    return await asUsageErrors(() => Promise.resolve(frameFromPicture(bytes, file, size, channels)));
  }
  const digit = digitFromPng(bytes, file);
  return digitImage({ images: digit.pixels, labels: Int32Array.of(0), count: 1 }, 0, run.config.image);
}

if (import.meta.main) await runCli(main);
