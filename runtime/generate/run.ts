/**
 * Opening a trained run for inference: run.json names the spec, its config and dims; the spec is
 * loaded and compiled for the entries a command needs, and the parameters come from ema.safetensors
 * (the moving average, cleaner samples) when the run kept one, else model.safetensors; `weights`
 * picks one explicitly. A checkpoint of another spec or config is rejected before anything runs.
 */
import { compile } from "../../compiler/compile.ts";
import { loadSpec, UsageError } from "../load_spec.ts";
import type { AnyModel } from "../../spec/model.ts";
import { resolveConfig } from "../../spec/config.ts";
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import {
  type Checkpoint,
  CHECKPOINT_FILES,
  EMA_FILE,
  loadCheckpoint,
  type RunInfo,
  specHash,
} from "../checkpoint.ts";
import type { SafetensorsFile } from "../safetensors.ts";
import { checkAgainstParams } from "../safetensors.ts";
import { describeAdapter, type DeviceHandle, openDevice } from "../device.ts";
import { Executor } from "../executor.ts";
import { CheckpointError } from "../file_errors.ts";
import type { SampleContext } from "../train/sample_hooks.ts";
import { CACHED_ENTRIES, cachedModel } from "./cached_model.ts";
import { type SequenceModel, uncachedModel } from "./sequence_model.ts";

/** Where a Transfusion model's entries run. `config.seq` is the sequence length the entries use. */
export interface ModelSession {
  readonly config: TransfusionConfig;
  /**
   * An executor whose plan has entry `name`, and that entry's batch: `rows` when the session
   * compiles on demand, its own fixed batch otherwise (callers pad or chunk to it).
   */
  entry(name: string, rows: number): Promise<{ executor: Executor; batch: number }>;
  /**
   * One executor holding the KV-cached entries (prefill, decode, denoise_span: one cache shared by
   * them) for `rows` rows, where the session can compile them; sampling then runs only the image's
   * patches per step against the cached prompt.
   */
  cached?(rows: number): Promise<{ executor: Executor; batch: number }>;
}

/** A session with the spec and dims it runs: what the digit evaluation needs (a LoadedRun is one). */
export interface ModelRun extends ModelSession {
  readonly model: AnyModel;
  /** Dims as trained (batch, seq): the data source's batches fit them. */
  readonly dims: Readonly<Record<string, number>>;
}

/**
 * The training executor between two steps as a session (in a sample hook): its plan holds every
 * entry at the training batch, so nothing is compiled again.
 */
export function trainingSession(ctx: SampleContext): ModelRun {
  const config = ctx.config as TransfusionConfig;
  const batch = ctx.plan.dims.batch ?? 1;
  return {
    model: ctx.model,
    dims: ctx.plan.dims,
    config: { ...config, seq: ctx.plan.dims.seq ?? config.seq },
    entry: (name) => {
      const missing = new Error(
        `the training plan has no "${name}" entry (the trainer adds them for a hook)`,
      );
      if (!ctx.plan.entries[name]) return Promise.reject(missing);
      return Promise.resolve({ executor: ctx.executor, batch });
    },
  };
}

export interface LoadedRun extends ModelRun {
  readonly dir: string;
  readonly info: RunInfo;
  readonly checkpoint: string;
  readonly specPath: string;
  /** The spec's source changed since training (its parameters still match, or loading would fail). */
  readonly specChanged: boolean;
  /** Which parameters run: the moving average ("ema") or the last step's ("raw"). */
  readonly weights: Weights;
  /** One executor holding the entries `names` (compiled on first use) for `rows` rows. */
  entries(names: readonly string[], rows: number): Promise<{ executor: Executor; batch: number }>;
  /** Frees every executor compiled so far. */
  destroy(): void;
}

/** "ema": the parameters' moving average (ema.safetensors); "raw": model.safetensors. */
export type Weights = "ema" | "raw";
export const WEIGHTS: readonly Weights[] = ["ema", "raw"];

/** Entries a Transfusion spec declares besides its loss. */
const REQUIRED_ENTRIES = ["denoise", "logits"];

/**
 * Opens the run in `dir`. `requires`: the entries the spec must declare (default a Transfusion's
 * denoise and logits; `["logits"]` opens any language model).
 */
export async function loadRun(
  dir: string,
  opts: {
    readonly handle?: DeviceHandle;
    readonly weights?: Weights;
    readonly requires?: readonly string[];
  } = {},
): Promise<LoadedRun> {
  const checkpoint = await loadCheckpoint(dir);
  const weights = opts.weights ?? (checkpoint.ema ? "ema" : "raw");
  if (weights === "ema" && !checkpoint.ema) {
    throw new CheckpointError(
      `${checkpoint.path} has no ${EMA_FILE} (the run was trained without --ema); use --weights raw`,
    );
  }
  const info = checkpoint.run;
  const specPath = info.spec.path;
  const model = await loadRunSpec(specPath, checkpoint);
  const specChanged = (await specHash(await Deno.readTextFile(specPath))) !== info.spec.hash;
  const missing = (opts.requires ?? REQUIRED_ENTRIES).filter((e) => !model.entries?.[e]);
  if (missing.length > 0) {
    const what = opts.requires ? "cannot generate" : "is not a Transfusion spec";
    throw new UsageError(
      `${specPath} (model "${model.name}") ${what}: it has no ${missing.join(", ")} entry`,
    );
  }
  const overrides = (info.config ?? {}) as Record<string, unknown>;
  const resolved = resolveConfig(model.config, overrides, specPath) as TransfusionConfig;
  const dims = { ...model.dims, ...info.dims };
  const config: TransfusionConfig = { ...resolved, seq: dims.seq ?? resolved.seq };
  // Tracing the loss alone gives the parameter layout; the entries are compiled when first used.
  const layout = compile(model, { config: overrides, dims, entries: [] }).params;
  checkAgainstParams(checkpoint.model, layout, `${checkpoint.path}/${CHECKPOINT_FILES.model}`);
  // loadCheckpoint checked that ema.safetensors holds exactly model.safetensors' tensors.
  const file = weights === "ema" ? checkpoint.ema! : checkpoint.model;
  const params = new Map(layout.map((p) => [p.path, floatData(file, checkpoint.path, p.path)]));

  const handle = opts.handle ?? await openDevice();
  const adapterClass = describeAdapter(handle).adapterClass;
  const executors = new Map<string, Promise<Executor>>();
  const open = async (names: readonly string[], rows: number) => {
    const plan = compile(model, {
      config: overrides,
      dims: { ...dims, batch: rows, seq: config.seq },
      entries: names,
      adapterClass,
    });
    const executor = await Executor.create(plan, { handle });
    await executor.setAllParams(params);
    return executor;
  };
  const opened = async (names: readonly string[], rows: number) => {
    if (!Number.isInteger(rows) || rows < 1) {
      throw new RangeError(`entry ${names.join("+")}: rows must be >= 1, got ${rows}`);
    }
    // The cached entries' executor already open for up to 4x the rows is used as it is (their
    // callers chunk to its batch; others, like heldOutLosses, need the batch they ask for): on
    // lavapipe a new batch means compiling and JIT-warming every pipeline again, which costs more
    // than running the spare rows (eval captions 20 images after 40 guided ones: 80 rows).
    const cachedEntries = names.join("+") === CACHED_ENTRIES.join("+");
    const open4x = [...executors.keys()].map((k) => k.split("@")).find(([n, r]) =>
      cachedEntries && n === names.join("+") && Number(r) >= rows && Number(r) <= 4 * rows
    );
    if (open4x) return { executor: await executors.get(open4x.join("@"))!, batch: Number(open4x[1]) };
    const key = `${names.join("+")}@${rows}`;
    let executor = executors.get(key);
    if (!executor) {
      executors.set(key, executor = open(names, rows));
      executor.catch(() => executors.delete(key));
    }
    return { executor: await executor, batch: rows };
  };
  return {
    dir,
    info,
    checkpoint: checkpoint.path,
    specPath,
    model,
    dims,
    config,
    specChanged,
    weights,
    entry: (name, rows) => opened([name], rows),
    entries: opened,
    ...(CACHED_ENTRIES.every((e) => model.entries?.[e])
      ? { cached: (rows) => opened(CACHED_ENTRIES, rows) }
      : {}),
    destroy() {
      for (const e of executors.values()) e.then((x) => x.destroy(), () => {});
      executors.clear();
    },
  };
}

async function loadRunSpec(path: string, checkpoint: Checkpoint): Promise<AnyModel> {
  try {
    await Deno.stat(path);
  } catch {
    throw new UsageError(
      `${checkpoint.path}/${CHECKPOINT_FILES.run} names spec ${path}, which does not exist here ` +
        `(paths are relative to the directory training ran in; run from there)`,
    );
  }
  return await loadSpec(path);
}

function floatData(file: SafetensorsFile, folder: string, path: string): Float32Array {
  const data = file.tensors.get(path)!.data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new CheckpointError(`${folder}: parameter "${path}" is stored as a 64-bit integer`);
  }
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

/** Tells a person on stderr that the spec was edited after training (the parameters still fit). */
export function warnIfSpecChanged(run: LoadedRun): void {
  if (run.specChanged) {
    console.error(`note: ${run.specPath} changed since ${run.dir} was trained; its parameters still fit`);
  }
}

/**
 * The run's model as the generation loops see it, for `rows` model rows: over the KV-cached entries
 * where the spec has them, else re-running logits / denoise over whole rows.
 */
export async function openSequenceModel(run: LoadedRun, rows: number): Promise<SequenceModel> {
  if (run.cached) return cachedModel((await run.cached(rows)).executor, run.config);
  return uncachedModel((await run.entries(["logits", "denoise"], rows)).executor, run.config);
}
