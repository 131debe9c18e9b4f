/**
 * `deno task demo [--minutes M] [--steps N] [--out demo-out] [--spec examples/transfusion_demo_cpu.ts]
 *    [--n-per-digit K] [--sample-steps S] [--cfg W] [--captions N] [--loss-batches N] [--shipped DIR]
 *    [--classifier DIR] [--classifier-steps N]`
 *
 * One command from nothing to pictures, in M minutes for everything (default 10; no limit with
 * --steps alone): it prints the adapter, measures a few training steps and a first live grid
 * (OUT/live.png, redrawn about once a minute), sizes the run to what the evaluations leave, and
 * trains that many steps (at most N), so the lr schedule ends where the run does. The last step is
 * evaluated with the training executor itself, so nothing is compiled twice (see cli/eval.ts for
 * the figures); the digit classifier comes from its shipped
 * checkpoint (examples/checkpoints/digit_classifier/), trained first only if neither it nor
 * runs/digit-classifier/ fits its spec. Writes to OUT:
 *   live.png               one sample per digit, redrawn while training
 *   run/                   the training run (checkpoint, log, loss.svg)
 *   samples/digit_<d>.png  K samples for each digit's caption
 *   captions/real_<i>.png  held-out real digits, with captions.txt giving the model's caption of each
 *   loss.svg, eval.json, report.html   the figures together
 * When a shipped checkpoint exists (default examples/checkpoints/transfusion_demo/), it is evaluated
 * first (fewer samples; its time is then known, not guessed) under OUT/shipped/, and the report shows
 * both, labeled. A rerun replaces what an
 * earlier demo wrote in OUT (and only that).
 */
import { loadSpec, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import {
  CLASSIFIER_DIR,
  evalJson,
  type EvalSettings,
  evaluateWith,
  openClassifier,
  type RunRef,
} from "./eval.ts";
import { reportHtml, type ReportSection } from "./report.ts";
import { encodeGrayPng, encodePng } from "../runtime/png.ts";
import { imageGrid } from "../runtime/plots.ts";
import { DEFAULT_SETTINGS, progressLine, train } from "../runtime/train/mod.ts";
import { digitCaption } from "../data/mnist_captions.ts";
import { type EvalCosts, evalMs, liveGrid, paramCount, sizeDemo, writeDigitGrid } from "./demo_budget.ts";
import { describeAdapter, type DeviceHandle, openDevice } from "../runtime/device.ts";
import {
  asUsageErrors,
  DIGIT_SIDE,
  intFlag,
  loadRun,
  numberFlag,
  trainingSession,
} from "../runtime/generate/mod.ts";
import { type DigitEvalOutput, formatDigitEval } from "../data/mod.ts";

/**
 * What the demo trains: a spec sized to learn in minutes on a CPU. The shipped checkpoint has a spec of
 * its own (examples/transfusion_demo.ts, recorded in its run.json), a larger model trained on a GPU.
 */
const DEMO_SPEC = "examples/transfusion_demo_cpu.ts";
/** The whole demo's minutes: loading, compiling, training and both evaluations (cli/demo_budget.ts). */
const DEFAULT_MINUTES = 10;
const SHIPPED = "examples/checkpoints/transfusion_demo";
/**
 * DDIM steps per generated digit: the demo's own model predicts clean images (x0) and drew as many
 * readable digits in 10 steps as in 25 (checkpoint README); the shipped one predicts noise, and keeps
 * the 25 its figures were measured with. `--sample-steps` sets both.
 */
const SAMPLE_STEPS = 10;
const SHIPPED_SAMPLE_STEPS = 25;

export const DEMO = command({
  name: "demo",
  args: "",
  summary: "One command from nothing to pictures: trains the demo spec within a time budget (a live " +
    "grid in OUT/live.png while it trains), evaluates it and the shipped checkpoint, and writes " +
    "samples, captions, eval.json and report.html to OUT.",
  flags: {
    minutes: {
      type: "string",
      value: "M",
      help: "minutes for everything: compiling, training and both evaluations",
      defaultText: `${DEFAULT_MINUTES}; no limit with --steps alone`,
    },
    steps: {
      type: "string",
      value: "N",
      help: "train at most N steps",
      defaultText: "what the minutes allow",
    },
    out: {
      type: "string",
      value: "OUT",
      help: "output folder (a rerun replaces what a demo wrote)",
      defaultText: "demo-out",
    },
    spec: { type: "string", value: "FILE", help: "the Transfusion spec to train", defaultText: DEMO_SPEC },
    "n-per-digit": {
      type: "string",
      value: "K",
      help: "samples per digit in the evaluation",
      defaultText: "8",
    },
    "sample-steps": {
      type: "string",
      value: "S",
      help: "sampler steps in the evaluation",
      defaultText: `${SAMPLE_STEPS} (the shipped checkpoint: ${SHIPPED_SAMPLE_STEPS})`,
    },
    cfg: { type: "string", value: "W", help: "classifier-free guidance weight", defaultText: "3" },
    captions: { type: "string", value: "N", help: "held-out digits to caption", defaultText: "50" },
    "loss-batches": {
      type: "string",
      value: "N",
      help: "eval batches for the held-out losses",
      defaultText: "5",
    },
    shipped: {
      type: "string",
      value: "DIR",
      help: "a checkpoint to evaluate first, shown next to the new run",
      defaultText: `${SHIPPED} for the demo spec or its own`,
    },
    classifier: { type: "string", value: "DIR", help: "digit classifier cache", defaultText: CLASSIFIER_DIR },
    "classifier-steps": {
      type: "string",
      value: "N",
      help: "training steps of the classifier when it must be trained",
      defaultText: "its spec's",
    },
  },
  examples: ["deno task demo", "deno task demo --minutes 3 --out demo-quick"],
});

const USAGE = usageLine(DEMO);
/** What a demo writes in OUT; a rerun removes these first, nothing else. */
const OUTPUTS = ["live.png", "run", "samples", "captions", "shipped", "loss.svg", "eval.json", "report.html"];
/** Real digits shown with their captions in the report. */
const SHOWN_CAPTIONS = 20;
/** A cap on a timed demo's steps (the budget sizes the run; a fast GPU stops here). */
const MAX_TIMED_STEPS = 20_000;
/** Kept beyond the estimated evaluations: the final save, the shipped executor, the report. */
const MARGIN_MS = 30_000;
const SHIPPED_PER_DIGIT = 4;
const SHIPPED_CAPTIONS = 20;

async function main(): Promise<void> {
  const { values, positionals } = parseCommand(DEMO, Deno.args);
  if (positionals.length > 0) throw new UsageError(USAGE);
  const steps = intFlag("steps", values.steps, 1);
  const minutes = numberFlag("minutes", values.minutes, 0) ??
    (steps === undefined ? DEFAULT_MINUTES : Infinity);
  if (minutes === 0) throw new UsageError(`--minutes must be > 0, got "${values.minutes}"`);
  const out = values.out ?? "demo-out";
  const specPath = values.spec ?? DEMO_SPEC;
  const classifierSteps = intFlag("classifier-steps", values["classifier-steps"], 1);
  const evalSettings: EvalSettings = {
    nPerDigit: intFlag("n-per-digit", values["n-per-digit"], 1, 100) ?? 8,
    steps: intFlag("sample-steps", values["sample-steps"], 1) ?? SAMPLE_STEPS,
    cfg: numberFlag("cfg", values.cfg, 0) ?? 3,
    seed: 0,
    captions: intFlag("captions", values.captions, 1) ?? 50,
    lossBatches: intFlag("loss-batches", values["loss-batches"], 0) ?? 5,
    classifierDir: values.classifier ?? CLASSIFIER_DIR,
    ...(classifierSteps ? { classifierSteps } : {}),
  };
  if (values.shipped && !(await exists(values.shipped))) {
    throw new UsageError(`--shipped ${values.shipped}: no such directory`);
  }
  // The default shipped checkpoint goes with the demo's own spec (or its own): a demo of another spec
  // leaves it out.
  const withShipped = specPath === DEMO_SPEC || await trainedOn(SHIPPED) === specPath;
  const shipped = values.shipped ?? (withShipped ? SHIPPED : undefined);
  const model = await loadSpec(specPath);
  for (const name of OUTPUTS) await Deno.remove(`${out}/${name}`, { recursive: true }).catch(() => {});
  await Deno.mkdir(out, { recursive: true });
  const log = (line: string) => console.log(`  ${line}`);
  const started = performance.now();
  const handle = await openDevice();
  const adapter = adapterLine(handle);
  console.log(`adapter: ${adapter}`);
  // The shipped checkpoint is a known-good model: fewer samples show it, in less time.
  const shippedSettings: EvalSettings = {
    ...evalSettings,
    nPerDigit: Math.min(evalSettings.nPerDigit, SHIPPED_PER_DIGIT),
    captions: Math.min(evalSettings.captions, SHIPPED_CAPTIONS),
    steps: values["sample-steps"] === undefined ? SHIPPED_SAMPLE_STEPS : evalSettings.steps,
    lossBatches: Math.min(evalSettings.lossBatches, 1),
  };
  const classifier = await openClassifier(evalSettings, log);
  try {
    const sections: ReportSection[] = [];
    const results: Record<string, unknown> = {};
    const record = async (ref: RunRef, label: string, into: string, output: DigitEvalOutput) => {
      sections.push(await writeSection(out, into, label, ref, output));
      results[into || "trained"] = evalJson(ref, output.result);
    };

    // ---- the shipped checkpoint first: a working model on screen at once, and its time measured ----
    let shippedResult: Parameters<typeof record> | undefined;
    if (shipped !== undefined && await exists(shipped)) {
      const run = await loadRun(shipped);
      try {
        console.log(`evaluating the shipped checkpoint ${shipped}`);
        // Its samples are the first grid on screen (OUT/live.png), before its captioning runs; the
        // demo's own model redraws the file from its first steps on.
        const showFirst = async (samples: readonly (readonly Float32Array[])[]) => {
          const columns = Math.max(...samples.map((s) => s.length));
          const digits = Array.from({ length: columns }, (_, k) => samples.map((s) => s[k % s.length]!))
            .flat();
          await writeDigitGrid(`${out}/live.png`, digits);
          const seconds = ((performance.now() - started) / 1000).toFixed(0);
          console.log(`  first samples (the shipped checkpoint's) in ${out}/live.png after ${seconds} s`);
        };
        const output = await evaluateWith(run, classifier, shippedSettings, log, showFirst);
        console.log(formatDigitEval(output.result));
        const shippedRef = { dir: shipped, spec: run.specPath, step: run.info.step, weights: run.weights };
        const from = run.info.initFrom;
        // A fine-tuned checkpoint says what it started from; its README has the whole chain.
        const steps = `${run.info.step} steps at batch ${run.info.dims.batch}`;
        const trained = from ? `${steps} on a ${from.step}-step checkpoint` : steps;
        const label = `shipped checkpoint: ${trained}${
          run.weights === "ema" ? ", moving-average weights" : ""
        }`;
        shippedResult = [shippedRef, label, "shipped", output];
      } finally {
        run.destroy();
      }
      console.log(`(${((performance.now() - started) / 60_000).toFixed(1)} min so far)\n`);
    }

    // ---- train within the time budget; the last step evaluates with the training executor ----
    // The budget covers everything: the loop measures a few steps, the first live grid times the
    // sampler, and training gets what both evaluations leave (cli/demo_budget.ts).
    const timed = Number.isFinite(minutes);
    const cap = steps ?? (timed ? MAX_TIMED_STEPS : model.training?.steps ?? DEFAULT_SETTINGS.steps);
    const budget = timed ? `${minutes} min for everything` : "no time limit";
    console.log(`training ${specPath} (${budget}, at most ${cap} steps) into ${out}/run`);
    const deadline = started + minutes * 60_000;
    const controller = new AbortController();
    let total = cap;
    let costs: EvalCosts | undefined;
    let reserveMs = 0;
    let evaluated: { step: number; output: DigitEvalOutput } | undefined;
    const trained = await asUsageErrors(() =>
      train({
        model,
        specPath,
        out: `${out}/run`,
        handle,
        // Without a budget the hook runs at the last step only, for the evaluation.
        settings: { steps: cap, checkpointEvery: 0, logEvery: 5, sampleEvery: timed ? 0 : cap },
        signal: controller.signal,
        ...(timed
          ? {
            budget: {
              size: (pace) => {
                const sized = sizeDemo(pace, deadline, reserveMs, MARGIN_MS);
                total = Math.min(cap, sized.steps);
                console.log(
                  `measured ${pace.msPerStep.toFixed(0)} ms/step on ${adapter}; evaluations reserved ` +
                    `${(reserveMs / 1000).toFixed(0)} s: training ${total} steps, ${out}/live.png ` +
                    `redrawn every ${sized.sampleEvery} steps`,
                );
                return sized;
              },
            },
          }
          : {}),
        onLog: (r) => {
          console.log(progressLine(r));
          // A safety net when the estimates were short: this step becomes the last, then evaluated.
          if (performance.now() >= deadline - reserveMs) controller.abort();
        },
        onNote: (n) => console.error(n),
        sampleHook: async (ctx) => {
          if (evaluated) return;
          if (ctx.step < total && !controller.signal.aborted) {
            const t = await liveGrid(ctx, evalSettings, `${out}/live.png`);
            if (!costs) {
              costs = { ...t, params: paramCount(ctx) };
              reserveMs = evalMs(costs, evalSettings);
              console.log(`first samples in ${out}/live.png (step ${ctx.step})`);
            }
            return;
          }
          console.log(`\nevaluating the model at step ${ctx.step}`);
          evaluated = {
            step: ctx.step,
            output: await evaluateWith(trainingSession(ctx), classifier, evalSettings, log),
          };
        },
      })
    );
    if (!evaluated) {
      // The budget ran out before its first sizing (a slow machine spent it on the shipped
      // checkpoint): the loop stopped without calling the hook, so the saved run is evaluated.
      console.log(`\nevaluating the model at step ${trained.step} (the time budget ran out first)`);
      const run = await loadRun(`${out}/run`, { handle });
      try {
        evaluated = { step: trained.step, output: await evaluateWith(run, classifier, evalSettings, log) };
      } finally {
        run.destroy();
      }
    }
    const trainMinutes = (performance.now() - started) / 60_000;
    const label = `trained now: ${evaluated.step} steps${trained.interrupted ? " (time budget)" : ""}`;
    const ref = { dir: `${out}/run`, spec: specPath, step: evaluated.step };
    console.log(formatDigitEval(evaluated.output.result));
    await record(ref, label, "", evaluated.output);
    console.log(`(training and evaluation took ${trainMinutes.toFixed(1)} min)`);

    if (shippedResult) await record(...shippedResult);

    await Deno.writeTextFile(`${out}/eval.json`, JSON.stringify(results, null, 2) + "\n");
    const notes = [
      `Spec ${specPath}; generated on ${new Date().toISOString()}.`,
      "Generated digits are read by examples/digit_classifier.ts (an MLP trained by this compiler); " +
      "a caption is right when the first digit it mentions is the label.",
    ];
    await Deno.writeTextFile(
      `${out}/report.html`,
      reportHtml("Transfusion demo: MNIST digits", sections, notes),
    );
    console.log(`\nwrote ${out}/report.html`);
    const wall = (performance.now() - started) / 60_000;
    console.log(`the demo took ${wall.toFixed(1)} min${timedNote(minutes)}`);
  } finally {
    classifier.destroy();
  }
}

/** Pictures of one evaluated model under OUT/`into`, and its report section. */
async function writeSection(
  out: string,
  into: string,
  label: string,
  run: RunRef,
  { result, samples, captioned }: DigitEvalOutput,
): Promise<ReportSection> {
  const rel = (name: string) => (into ? `${into}/${name}` : name);
  await Deno.mkdir(`${out}/${rel("samples")}`, { recursive: true });
  await Deno.mkdir(`${out}/${rel("captions")}`, { recursive: true });
  const grids = [];
  for (const [d, images] of samples.entries()) {
    const grid = imageGrid(images, DIGIT_SIDE, DIGIT_SIDE, Math.min(images.length, 4), { range: "unit" });
    const file = rel(`samples/digit_${d}.png`);
    await Deno.writeFile(`${out}/${file}`, encodePng(grid.rgba, grid.width, grid.height));
    grids.push({
      digit: d,
      caption: digitCaption(d, result.generation.template),
      file,
    });
  }
  const captions = [];
  const lines: string[] = [];
  for (const [i, example] of result.captioning.examples.slice(0, SHOWN_CAPTIONS).entries()) {
    const file = rel(`captions/real_${String(i).padStart(2, "0")}.png`);
    await Deno.writeFile(`${out}/${file}`, encodeGrayPng(captioned[i]!, DIGIT_SIDE, DIGIT_SIDE));
    captions.push({ file, ...example });
    lines.push(`${file}\tlabel ${example.label}\t${JSON.stringify(example.caption)}`);
  }
  await Deno.writeTextFile(`${out}/${rel("captions/captions.txt")}`, lines.join("\n") + "\n");
  const curve = `${run.dir}/loss.svg`;
  let lossCurve: string | undefined;
  if (await exists(curve)) {
    lossCurve = rel("loss.svg");
    await Deno.copyFile(curve, `${out}/${lossCurve}`);
  }
  return {
    label,
    run,
    eval: result,
    grids,
    captions,
    ...(lossCurve ? { lossCurve } : {}),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

const timedNote = (minutes: number) => Number.isFinite(minutes) ? ` of its ${minutes}-min budget` : "";

/** "llvmpipe (LLVM 15.0.6, 256 bits), cpu class, SIMD width 8": why figures differ between machines. */
function adapterLine(handle: DeviceHandle): string {
  const r = describeAdapter(handle);
  const info = handle.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const [lo, hi] = [info.subgroupMinSize, info.subgroupMaxSize];
  const simd = lo === undefined ? "SIMD width unknown" : `SIMD width ${lo === hi ? lo : `${lo}-${hi}`}`;
  const detail = r.description && r.description !== r.name ? ` (${r.description})` : "";
  return `${r.name}${detail}, ${r.adapterClass} class, ${simd}`;
}

/** The spec path a run directory's checkpoint was trained on, or undefined when there is none. */
async function trainedOn(dir: string): Promise<string | undefined> {
  try {
    const run = JSON.parse(await Deno.readTextFile(`${dir}/checkpoint/run.json`));
    return typeof run?.spec?.path === "string" ? run.spec.path : undefined;
  } catch {
    return undefined;
  }
}

if (import.meta.main) await runCli(main);
