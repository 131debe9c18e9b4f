/**
 * `deno task train <spec.ts> [--steps N] [--batch B] [--lr X] [--seed S] [--out DIR] [--resume] [--json]
 *    [--init-from RUN] [--set key=value]... [--dim name=N]... [--warmup N] [--lr-floor X] [--clip X]
 *    [--weight-decay X] [--log-every N] [--checkpoint-every N] [--sample-every N] [--ema DECAY]
 *    [--ema-every N] [--in-flight N] [--host-data] [--data KIND:PATH]`
 *
 * Trains a spec on its own data source (`data` in the spec), writing to DIR (default runs/<name>):
 * checkpoint/ (model.safetensors, optimizer.safetensors, run.json, and ema.safetensors with --ema),
 * training.json, log.jsonl, loss.svg.
 * Settings not given come from the spec's `training`, or on `--resume` from the checkpoint, which also
 * supplies config and dims; a given value that differs from the checkpoint's config or dims is refused.
 * `--init-from RUN` starts a new run from another run's parameters (fine-tuning): its config and dims
 * are the defaults (so the model is the one trained there), `--set` may change what leaves the
 * parameters as they are (a loss weight, a noise limit), and the optimizer, step and lr schedule
 * start afresh from step 0.
 *
 * Progress goes to stdout, one line per log interval; with `--json`, one JSON object per logged step
 * (`{"step","loss",<metrics>,"lr","grad_norm","ms","tok_s","elapsed_s"}`) and nothing else. Notes go
 * to stderr. `--in-flight N` (default 8) is how many steps are submitted before the loop waits on the
 * oldest one's loss; 1 waits on every step (the same losses, only slower on a fast GPU). Ctrl-C
 * finishes the steps in flight, saves a checkpoint and exits with 130 (best effort: a second Ctrl-C
 * quits at once, and the previous checkpoint stays intact, as saves are atomic). A data source that
 * can (MNIST) keeps its dataset on the device and the plan gathers each batch's images there;
 * `--host-data` assembles them on the host instead.
 * `--data KIND:PATH` trains on your own files instead of the spec's data (data/own_data.ts):
 * `images:DIR` (images with .txt captions beside them), `jsonl:FILE` ({"image", "caption"} lines) or
 * `text:PATH` (a .txt file, a folder of them, or {"text"} lines). The run records it in DIR/data.json,
 * and `--resume` takes it from there.
 */
import {
  logLine,
  progressLine,
  train,
  TrainError,
  type TrainResult,
  type TrainSettings,
} from "../runtime/train/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { isFileSystemError } from "../runtime/file_errors.ts";
import { dataFromFlag } from "../data/own_data.ts";
// Registers the Transfusion sample hook, so `--sample-every N` writes sample grids for those specs.
import "../runtime/generate/train_samples.ts";

export const TRAIN = command({
  name: "train",
  args: "<spec.ts>",
  summary: "Trains a spec on its own data source (`data` in the spec) and writes checkpoints, " +
    "training.json, log.jsonl and loss.svg to a run directory. Settings not given come from the " +
    "spec's `training`, on --resume from the checkpoint, else the built-in defaults shown.",
  flags: {
    steps: {
      type: "string",
      value: "N",
      help: "total optimizer steps (the lr schedule ends here)",
      defaultText: "1000",
    },
    batch: { type: "string", value: "B", help: "sequences per step", defaultText: "the spec's batch" },
    lr: { type: "string", value: "X", help: "peak learning rate", defaultText: "3e-4" },
    seed: {
      type: "string",
      value: "S",
      help: "seeds init, data batches and the in-graph RNG",
      defaultText: "0",
    },
    out: { type: "string", value: "DIR", help: "run directory", defaultText: "runs/<spec name>" },
    resume: { type: "boolean", default: false, help: "continue the run in --out from its checkpoint" },
    json: { type: "boolean", default: false, help: "print one JSON object per logged step, nothing else" },
    "init-from": {
      type: "string",
      value: "RUN",
      help: "start from another run's parameters (fine-tuning; optimizer and schedule start afresh)",
    },
    ...SPEC_FLAGS,
    warmup: {
      type: "string",
      value: "N",
      help: "linear lr warmup steps, then cosine decay",
      defaultText: "0",
    },
    "lr-floor": {
      type: "string",
      value: "X",
      help: "lr at the end of the cosine decay",
      defaultText: "lr / 10",
    },
    clip: { type: "string", value: "X", help: "global gradient-norm clip; 0 turns it off", defaultText: "1" },
    "weight-decay": { type: "string", value: "X", help: "AdamW weight decay", defaultText: "0.01" },
    "log-every": {
      type: "string",
      value: "N",
      help: "log every N steps; 0: every 10 steps or 2 seconds",
      defaultText: "0",
    },
    "checkpoint-every": {
      type: "string",
      value: "N",
      help: "save a checkpoint every N steps (and at the end); 0: only at the end",
      defaultText: "500",
    },
    "sample-every": {
      type: "string",
      value: "N",
      help: "write sample grids every N steps (Transfusion specs); 0: never",
      defaultText: "0",
    },
    ema: {
      type: "string",
      value: "DECAY",
      help: "keep a moving average of the parameters (0.999 ~ 1000 steps); 0: none",
      defaultText: "0",
    },
    "ema-every": {
      type: "string",
      value: "N",
      help: "fold into the average every N steps",
      defaultText: "10",
    },
    "in-flight": {
      type: "string",
      value: "N",
      help: "steps submitted before waiting on the oldest loss (1..64)",
      defaultText: "8",
    },
    "host-data": {
      type: "boolean",
      default: false,
      help: "assemble batches on the host instead of gathering them on the device",
    },
    data: {
      type: "string",
      value: "KIND:PATH",
      help: "train on your own files: images:DIR (pictures with .txt captions), jsonl:FILE " +
        '({"image", "caption"} lines) or text:PATH (.txt/.md file or folder, {"text"} lines)',
    },
  },
  examples: [
    "deno task train examples/transfusion_demo.ts --steps 200 --out runs/demo",
    "deno task train examples/transfusion_demo.ts --out runs/demo --resume --steps 400",
    "deno task train examples/own_images.ts --data images:./my_pictures --steps 2000",
  ],
  notes: [
    "Ctrl-C finishes the steps in flight, saves a checkpoint and exits 130; --resume continues.",
  ],
});

const USAGE = usageLine(TRAIN);

/** Flags that set a training setting, by setting. */
const SETTING_FLAGS = {
  steps: "steps",
  lr: "lr",
  warmup: "warmup",
  lrFloor: "lr-floor",
  clip: "clip",
  weightDecay: "weight-decay",
  seed: "seed",
  logEvery: "log-every",
  checkpointEvery: "checkpoint-every",
  sampleEvery: "sample-every",
  ema: "ema",
  emaEvery: "ema-every",
  inFlight: "in-flight",
} as const satisfies Partial<Record<keyof TrainSettings, string>>;

async function main(): Promise<void> {
  const { values, positionals } = parseFlags();
  const path = positionals[0];
  if (!path || positionals.length > 1) throw new UsageError(USAGE);
  const flag = (name: string) => (values as Record<string, unknown>)[name];
  const settings: Record<string, number> = {};
  for (const [key, name] of Object.entries(SETTING_FLAGS)) {
    const raw = flag(name);
    if (typeof raw === "string") settings[key] = number(`--${name}`, raw);
  }
  const dims = parseDims(values.dim);
  if (values.batch !== undefined) dims.batch = number("--batch", values.batch);

  const spec = await loadSpec(path);
  const out = values.out ?? `runs/${spec.name}`;
  const data = await dataChoice(out, values.data, values.resume);
  const model = data ? { ...spec, data: userData(data) } : spec;
  // A new run remembers its --data for --resume, once it has begun (at its first log line).
  let record = data !== undefined && !values.resume;
  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
    console.error("interrupted: saving a checkpoint after the steps in flight (Ctrl-C again quits at once)");
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let result: TrainResult;
  try {
    result = await train({
      model,
      specPath: path,
      out,
      config: parseOverrides(values.set),
      dims,
      settings: settings as Partial<TrainSettings>,
      resume: values.resume,
      initFrom: values["init-from"],
      hostData: values["host-data"],
      signal: controller.signal,
      onNote: (note) => console.error(note),
      onLog: (r) => {
        if (record) Deno.writeTextFileSync(`${out}/${DATA_RECORD}`, JSON.stringify({ data }) + "\n");
        record = false;
        console.log(values.json ? JSON.stringify(logLine(r)) : progressLine(r));
      },
    });
  } catch (e) {
    if (e instanceof TrainError || (e instanceof Error && DATA_ERRORS.has(e.name))) {
      throw new UsageError(e.message);
    }
    if (isFileSystemError(e)) {
      throw new UsageError(`run directory ${out}: ${e.message}; ${await whatStays(out)}`);
    }
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
  if (result.step > result.startStep) console.error(`saved ${out}/checkpoint at step ${result.step}`);
  if (result.interrupted) {
    console.error(`stopped at step ${result.step} of ${result.settings.steps}; continue with --resume`);
    Deno.exit(130);
  }
}

/** The errors of the user's own data (data/data_files.ts): a bad file or option, shown as one line. */
const DATA_ERRORS = new Set(["DataError", "DataFileError"]);
/** Where a run trained with --data records it. */
const DATA_RECORD = "data.json";

/** The --data of this run: as given, or on --resume as recorded (a different one is refused). */
async function dataChoice(out: string, given: string | undefined, resume: boolean) {
  if (!resume) return given;
  let recorded: string | undefined;
  try {
    recorded = JSON.parse(await Deno.readTextFile(`${out}/${DATA_RECORD}`)).data;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new UsageError(`${out}/${DATA_RECORD}: ${(e as Error).message}`);
    }
  }
  if (given !== undefined && recorded !== undefined && given !== recorded) {
    throw new UsageError(
      `${out} was trained with --data ${recorded}; --resume with --data ${given} would change its data ` +
        `(start a new run with --out, or --init-from ${out})`,
    );
  }
  if (given !== undefined && recorded === undefined) {
    throw new UsageError(
      `${out} has no ${DATA_RECORD}: it was trained on its spec's data (or is not a run); ` +
        `--resume cannot switch it to --data ${given}`,
    );
  }
  return recorded;
}

function userData(flag: string) {
  try {
    return dataFromFlag(flag);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** After a failed write (full disk, read-only folder): the checkpoint that is still there, if any. */
async function whatStays(out: string): Promise<string> {
  try {
    const { run, path } = await loadCheckpoint(out);
    return `the checkpoint of step ${run.step} in ${path} stays; fix that and continue with --resume`;
  } catch {
    return `no checkpoint of this run was saved in ${out}`;
  }
}

/** The flags; a malformed command line (unknown flag, missing value) is a usage error. */
function parseFlags() {
  return parseCommand(TRAIN, Deno.args);
}

function number(flag: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`${flag} expects a number, got "${raw}"`);
  }
  return n;
}

function parseDims(pairs: readonly string[]): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const pair of pairs) {
    const [name, raw] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
    const value = Number(raw);
    if (!name || !Number.isInteger(value) || value <= 0) {
      throw new UsageError(`--dim expects name=N with N a positive integer, got "${pair}"`);
    }
    dims[name] = value;
  }
  return dims;
}

if (import.meta.main) await runCli(main);
