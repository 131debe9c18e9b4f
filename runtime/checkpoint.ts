/**
 * Checkpoints of a run directory DIR. The current checkpoint is the folder `DIR/checkpoint/`:
 *   model.safetensors      parameters by tree path (`blocks.3.attn.wq.w`)
 *   optimizer.safetensors  AdamW moments `m.<path>` and `v.<path>` (a weights-only copy leaves it out:
 *                          enough to sample, eval and `--init-from`, not to `--resume`)
 *   ema.safetensors        (optional) the moving average of the parameters, by the same paths
 *   run.json               everything else needed to resume (`RunInfo`)
 * Saving writes a complete, fsynced folder first and only then swaps it in with renames, so a
 * write killed at any point leaves a complete checkpoint behind (see `saveCheckpointSteps`).
 */
import { z } from "zod";
import type { ParamLayout } from "../compiler/plan.ts";
import { CheckpointError } from "./file_errors.ts";
import {
  checkAgainstParams,
  checkFinite,
  checkTensors,
  decodeSafetensors,
  encodeSafetensors,
  type ExpectedTensor,
  nonFiniteTensors,
  SAFE_DTYPE,
  type SafeTensor,
  type SafetensorsFile,
} from "./safetensors.ts";

export { CheckpointError };

export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_FILES = {
  model: "model.safetensors",
  optimizer: "optimizer.safetensors",
  run: "run.json",
} as const;
/** The optional file of parameter averages (runtime/train/weight_average.ts); same names as model. */
export const EMA_FILE = "ema.safetensors";

const RUN_INFO = z.object({
  version: z.literal(CHECKPOINT_VERSION),
  /** The spec file, its model name and `specHash` of its source. */
  spec: z.object({ path: z.string(), name: z.string(), hash: z.string() }),
  config: z.json(),
  dims: z.record(z.string(), z.number().int()),
  /** Optimizer steps taken (the executor's `step`). */
  step: z.number().int().nonnegative(),
  /** Where the data loader resumes; loaders may add their own numeric fields. */
  data: z.object({ epoch: z.number().int().nonnegative(), index: z.number().int().nonnegative() })
    .catchall(z.number()),
  /** The executor seed; further named streams may be added. */
  rng: z.object({ seed: z.number().int().nonnegative() }).catchall(z.number()),
  /** Latest values (loss, grad norm, ...); null where a value was not finite. */
  metrics: z.record(z.string(), z.number().nullable()),
  /** A run started from another run's parameters (`--init-from`): that checkpoint and its step. */
  initFrom: z.object({ path: z.string(), step: z.number().int().nonnegative(), specHash: z.string() })
    .optional(),
  /** ISO 8601 time of the save. */
  created: z.string(),
});

export type RunInfo = z.infer<typeof RUN_INFO>;
/** What a caller gives `saveCheckpoint`: the save stamps `version` and `created`. */
export type RunState = Omit<RunInfo, "version" | "created">;

export interface CheckpointParts {
  /** The plan's parameter layout: names, shapes and dtypes of `params` and `optimizer`. */
  readonly layout: readonly ParamLayout[];
  readonly params: ReadonlyMap<string, ArrayLike<number>>;
  readonly optimizer: ReadonlyMap<string, { readonly m: ArrayLike<number>; readonly v: ArrayLike<number> }>;
  /** The parameters' moving average, when the run keeps one. */
  readonly ema?: ReadonlyMap<string, ArrayLike<number>>;
  readonly run: RunState;
}

export interface Checkpoint {
  /** The folder it was read from (`DIR/checkpoint`, or a leftover of an interrupted save). */
  readonly path: string;
  readonly run: RunInfo;
  readonly model: SafetensorsFile;
  /**
   * Absent in a weights-only copy (optimizer.safetensors left out, say to ship or carry half the
   * bytes): sampling, eval and `--init-from` need only the parameters; `--resume` needs the moments.
   */
  readonly optimizer?: SafetensorsFile;
  /** ema.safetensors, checked to hold exactly model's tensors, when the folder has one. */
  readonly ema?: SafetensorsFile;
}

/** SHA-256 (hex) of a spec's source text, recorded in run.json to tell specs apart. */
export async function specHash(source: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(source));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const CURRENT = "checkpoint";
const NEW = "checkpoint.new";
const OLD = "checkpoint.old";
const TEMP_PREFIX = ".tmp-";
const at = (...parts: string[]) => parts.join("/");

/** The points `saveCheckpointSteps` passes, in order; a crash can happen after any of them. */
export const SAVE_STEPS = [
  "wrote model.safetensors",
  "wrote optimizer.safetensors",
  "wrote ema.safetensors (when kept)",
  "wrote run.json",
  "renamed temp to checkpoint.new",
  "moved previous to checkpoint.old",
  "renamed checkpoint.new to checkpoint",
  "removed checkpoint.old",
] as const;
export type SaveStep = (typeof SAVE_STEPS)[number];

/** Saves atomically and returns the checkpoint folder. */
export async function saveCheckpoint(dir: string, parts: CheckpointParts): Promise<string> {
  for await (const _ of saveCheckpointSteps(dir, parts));
  return at(dir, CURRENT);
}

/**
 * The save, one step per yield, so tests can stop it anywhere (a simulated crash). The commit point
 * is the rename of `checkpoint.new` to `checkpoint`; before it the previous checkpoint is what
 * `loadCheckpoint` returns (from `checkpoint` or, during the swap, `checkpoint.old`).
 */
export async function* saveCheckpointSteps(dir: string, parts: CheckpointParts): AsyncGenerator<SaveStep> {
  const files = encodeParts(parts);
  await Deno.mkdir(dir, { recursive: true });
  await settleInterruptedSave(dir);
  const temp = at(dir, `${TEMP_PREFIX}${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(temp);
  try {
    await writeSynced(at(temp, CHECKPOINT_FILES.model), files.model);
    yield "wrote model.safetensors";
    await writeSynced(at(temp, CHECKPOINT_FILES.optimizer), files.optimizer);
    yield "wrote optimizer.safetensors";
    if (files.ema) await writeSynced(at(temp, EMA_FILE), files.ema);
    yield "wrote ema.safetensors (when kept)";
    await writeSynced(at(temp, CHECKPOINT_FILES.run), files.run);
    await syncDir(temp);
    yield "wrote run.json";
  } catch (e) {
    // A failed write (a full disk) gives its space back; the previous checkpoint was never touched.
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
  await Deno.rename(temp, at(dir, NEW));
  await syncDir(dir);
  yield "renamed temp to checkpoint.new";
  const hadPrevious = await exists(at(dir, CURRENT));
  if (hadPrevious) await Deno.rename(at(dir, CURRENT), at(dir, OLD));
  yield "moved previous to checkpoint.old";
  await Deno.rename(at(dir, NEW), at(dir, CURRENT));
  await syncDir(dir);
  yield "renamed checkpoint.new to checkpoint";
  if (hadPrevious) await Deno.remove(at(dir, OLD), { recursive: true });
  yield "removed checkpoint.old";
}

function encodeParts(
  parts: CheckpointParts,
): { model: Uint8Array; optimizer: Uint8Array; ema?: Uint8Array; run: Uint8Array } {
  const model = new Map<string, SafeTensor>();
  const moments = new Map<string, SafeTensor>();
  const ema = parts.ema && new Map<string, SafeTensor>();
  const tensor = (p: ParamLayout, what: string, values: ArrayLike<number> | undefined): SafeTensor => {
    if (!values) throw new CheckpointError(`saveCheckpoint: no ${what} for parameter "${p.path}"`);
    return { dtype: SAFE_DTYPE[p.dtype], shape: p.shape, data: HOST_ARRAY[p.dtype](values) };
  };
  for (const p of parts.layout) {
    model.set(p.path, tensor(p, "value", parts.params.get(p.path)));
    const state = parts.optimizer.get(p.path);
    moments.set(`m.${p.path}`, tensor(p, "optimizer m", state?.m));
    moments.set(`v.${p.path}`, tensor(p, "optimizer v", state?.v));
    ema?.set(p.path, tensor(p, "moving average", parts.ema!.get(p.path)));
  }
  // The last line of defence of "a non-finite state is never saved": the previous checkpoint stays.
  const spoiled = nonFiniteTensors(model) ?? nonFiniteTensors(moments) ?? (ema && nonFiniteTensors(ema));
  if (spoiled) {
    throw new CheckpointError(`saveCheckpoint: refused, ${spoiled} (the previous checkpoint stays)`);
  }
  const stamped = { version: CHECKPOINT_VERSION, ...parts.run, created: new Date().toISOString() };
  // Checked as it will be read back (NaN metrics become null), so a bad state fails now, not on resume.
  const checked = RUN_INFO.safeParse(JSON.parse(JSON.stringify(stamped)));
  if (!checked.success) {
    throw new CheckpointError(`saveCheckpoint: run state ${describeIssues(checked.error)}`);
  }
  const run = checked.data;
  const meta = { step: String(run.step), spec: run.spec.name };
  return {
    model: encodeSafetensors(model, meta),
    optimizer: encodeSafetensors(moments, meta),
    ...(ema ? { ema: encodeSafetensors(ema, meta) } : {}),
    run: new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"),
  };
}

/** Host arrays per dtype; bool is stored one byte per element, as safetensors' BOOL is. */
const HOST_ARRAY: { readonly [D in ParamLayout["dtype"]]: (v: ArrayLike<number>) => SafeTensor["data"] } = {
  f32: (v) => Float32Array.from(v),
  i32: (v) => Int32Array.from(v),
  u32: (v) => Uint32Array.from(v),
  bool: (v) => Uint8Array.from(v, (x) => (x !== 0 ? 1 : 0)),
  f16: () => {
    throw new CheckpointError("saveCheckpoint: f16 parameters are not supported yet");
  },
};

/**
 * Leaves only `checkpoint` (promoting the leftover `loadCheckpoint` would pick when a swap was
 * interrupted) and removes temp folders, so the next save starts from a clean state.
 */
async function settleInterruptedSave(dir: string): Promise<void> {
  if (!(await exists(at(dir, CURRENT)))) {
    for (const name of await recoveryCandidates(dir)) {
      if (await readCheckpointFolder(at(dir, name)).then(() => true, () => false)) {
        await Deno.rename(at(dir, name), at(dir, CURRENT));
        break;
      }
    }
  }
  const leftovers: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name === NEW || entry.name === OLD || entry.name.startsWith(TEMP_PREFIX)) {
      leftovers.push(entry.name);
    }
  }
  for (const name of leftovers) await Deno.remove(at(dir, name), { recursive: true });
}

/** Leftovers of an interrupted swap, the previous checkpoint first. */
async function recoveryCandidates(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of [OLD, NEW]) if (await exists(at(dir, name))) found.push(name);
  return found;
}

/** What checkpoints need of a trainer's state; the runtime's `Executor` has exactly this. */
export interface TrainingState {
  readonly plan: { readonly params: readonly ParamLayout[] };
  step: number;
  getAllParams(): Promise<Map<string, Float32Array>>;
  setAllParams(values: ReadonlyMap<string, ArrayLike<number>>): Promise<void>;
  getOptimizerState(path: string): Promise<{ m: Float32Array; v: Float32Array }>;
  setOptimizerState(path: string, state: { m: ArrayLike<number>; v: ArrayLike<number> }): Promise<void>;
  /**
   * Several parameter-shaped buffers by path in one readback (the Executor's); without it the
   * capture reads parameter by parameter.
   */
  readParamBuffers?(names: readonly string[]): Promise<Map<string, Map<string, Float32Array>>>;
}

/**
 * Reads parameters and optimizer state off `state` (and, with `average`, the device's moving
 * average from buffer "ema"); `run.step` is taken from it. An Executor is read with one command
 * buffer and one wait, so a save stalls training by a single readback.
 */
export async function captureCheckpoint(
  state: TrainingState,
  run: Omit<RunState, "step">,
  opts: { readonly average?: boolean } = {},
): Promise<CheckpointParts> {
  const step = state.step;
  if (state.readParamBuffers) {
    const names = ["params", "adam_m", "adam_v", ...(opts.average ? ["ema"] : [])];
    const read = await state.readParamBuffers(names);
    const [m, v] = [read.get("adam_m")!, read.get("adam_v")!];
    const optimizer = new Map(
      state.plan.params.map((p) => [p.path, { m: m.get(p.path)!, v: v.get(p.path)! }]),
    );
    return {
      layout: state.plan.params,
      params: read.get("params")!,
      optimizer,
      ...(opts.average ? { ema: read.get("ema")! } : {}),
      run: { ...run, step },
    };
  }
  if (opts.average) throw new Error("captureCheckpoint: this training state keeps no moving average");
  const optimizer = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const p of state.plan.params) optimizer.set(p.path, await state.getOptimizerState(p.path));
  return {
    layout: state.plan.params,
    params: await state.getAllParams(),
    optimizer,
    run: { ...run, step },
  };
}

/** Writes a loaded checkpoint back into `state` (parameters, optimizer moments, step). */
export async function restoreCheckpoint(state: TrainingState, checkpoint: Checkpoint): Promise<void> {
  const { path } = checkpoint;
  const optimizer = requireOptimizer(checkpoint);
  checkAgainstParams(optimizer, state.plan.params, at(path, CHECKPOINT_FILES.optimizer), ["m.", "v."]);
  await restoreParameters(state, checkpoint);
  for (const p of state.plan.params) {
    await state.setOptimizerState(p.path, {
      m: numbers(optimizer, `m.${p.path}`, path),
      v: numbers(optimizer, `v.${p.path}`, path),
    });
  }
  state.step = checkpoint.run.step;
}

/** The optimizer state a resume continues from; a weights-only checkpoint is refused, naming the way on. */
export function requireOptimizer(checkpoint: Checkpoint): SafetensorsFile {
  if (checkpoint.optimizer) return checkpoint.optimizer;
  throw new CheckpointError(
    `${at(checkpoint.path, CHECKPOINT_FILES.optimizer)} is missing: this is a weights-only checkpoint, ` +
      `so a run cannot resume from it (the optimizer's moments are gone); start a new run from its ` +
      `parameters with --init-from ${checkpoint.path}`,
  );
}

/**
 * Writes only a checkpoint's parameters into `state` (a run started from another's weights): the
 * optimizer moments and the step stay what they are.
 */
export async function restoreParameters(
  state: Pick<TrainingState, "plan" | "setAllParams">,
  checkpoint: Checkpoint,
): Promise<void> {
  const { model, path } = checkpoint;
  checkAgainstParams(model, state.plan.params, at(path, CHECKPOINT_FILES.model));
  await state.setAllParams(new Map(state.plan.params.map((p) => [p.path, numbers(model, p.path, path)])));
}

function numbers(file: SafetensorsFile, name: string, path: string): ArrayLike<number> {
  const data = file.tensors.get(name)!.data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new CheckpointError(`${path}: tensor "${name}" is 64-bit integer; parameters never are`);
  }
  return data;
}

/**
 * Loads the checkpoint of run directory `dir` (or of `dir` itself when it is a checkpoint folder, one
 * holding model.safetensors), validating
 * every file; with `params` it also checks that the tensors are exactly the plan's parameters.
 */
export async function loadCheckpoint(
  dir: string,
  opts: { readonly params?: readonly ParamLayout[] } = {},
): Promise<Checkpoint> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`run directory ${dir} does not exist`);
    throw e;
  }
  if (!info.isDirectory) throw new CheckpointError(`${dir} is not a directory (expected a run directory)`);
  const checkpoint = await findCheckpoint(dir);
  if (opts.params) {
    checkAgainstParams(checkpoint.model, opts.params, at(checkpoint.path, CHECKPOINT_FILES.model));
    if (checkpoint.optimizer) {
      const optimizerPath = at(checkpoint.path, CHECKPOINT_FILES.optimizer);
      checkAgainstParams(checkpoint.optimizer, opts.params, optimizerPath, ["m.", "v."]);
    }
  }
  return checkpoint;
}

async function findCheckpoint(dir: string): Promise<Checkpoint> {
  const current = await Deno.stat(at(dir, CURRENT)).catch(() => undefined);
  if (current && !current.isDirectory) {
    throw new CheckpointError(
      `${at(dir, CURRENT)} is a file; a checkpoint is a folder of ${
        Object.values(CHECKPOINT_FILES).join(", ")
      }`,
    );
  }
  if (current) return await readCheckpointFolder(at(dir, CURRENT));
  if (await exists(at(dir, CHECKPOINT_FILES.model))) return await readCheckpointFolder(dir);
  const problems: string[] = [];
  for (const name of await recoveryCandidates(dir)) {
    try {
      return await readCheckpointFolder(at(dir, name));
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length > 0) {
    throw new CheckpointError(
      `no complete checkpoint in ${dir}; an interrupted save left:\n  ${problems.join("\n  ")}`,
    );
  }
  throw new CheckpointError(
    `no checkpoint in ${dir} (expected ${at(dir, CURRENT)}/ with ${
      Object.values(CHECKPOINT_FILES).join(", ")
    })`,
  );
}

async function readCheckpointFolder(path: string): Promise<Checkpoint> {
  const run = parseRunInfo(
    await readRequired(at(path, CHECKPOINT_FILES.run)),
    at(path, CHECKPOINT_FILES.run),
  );
  const modelPath = at(path, CHECKPOINT_FILES.model);
  const model = decodeSafetensors(await readRequired(modelPath), modelPath);
  checkFinite(model, modelPath);
  checkSameSave(model, run, modelPath);
  const optimizer = await readOptimizer(path, model, modelPath);
  if (optimizer) checkSameSave(optimizer, run, at(path, CHECKPOINT_FILES.optimizer));
  const checkpoint: Checkpoint = { path, run, model, ...(optimizer ? { optimizer } : {}) };
  const emaPath = at(path, EMA_FILE);
  if (!(await exists(emaPath))) return checkpoint;
  const ema = decodeSafetensors(await readRequired(emaPath), emaPath);
  const same = new Map<string, ExpectedTensor>();
  for (const [name, t] of model.tensors) same.set(name, { shape: t.shape, dtype: t.dtype });
  checkTensors(ema, same, emaPath, modelPath);
  checkFinite(ema, emaPath);
  return { ...checkpoint, ema };
}

/**
 * A save stamps each safetensors file with its step and model name (`encodeParts`); a file whose
 * stamp disagrees with run.json comes from another save (files of two checkpoints mixed by hand).
 * Files without the stamp (written elsewhere) are not checked.
 */
function checkSameSave(file: SafetensorsFile, run: RunInfo, source: string): void {
  const { step, spec } = file.metadata;
  const runPath = source.replace(/[^/]*$/, CHECKPOINT_FILES.run);
  if ((step !== undefined && step !== String(run.step)) || (spec !== undefined && spec !== run.spec.name)) {
    throw new CheckpointError(
      `${source} was saved at step ${step} of "${spec}", but ${runPath} is of step ${run.step} of ` +
        `"${run.spec.name}": the folder mixes files of two checkpoints`,
    );
  }
}

/**
 * optimizer.safetensors, checked to hold `m.` and `v.` of every model tensor; undefined when the
 * folder has none. A save writes it before run.json and renames the folder into place only after,
 * so its absence is a weights-only copy someone made, never a save cut short.
 */
async function readOptimizer(
  path: string,
  model: SafetensorsFile,
  modelPath: string,
): Promise<SafetensorsFile | undefined> {
  const optimizerPath = at(path, CHECKPOINT_FILES.optimizer);
  if (!(await exists(optimizerPath))) return undefined;
  const optimizer = decodeSafetensors(await readRequired(optimizerPath), optimizerPath);
  const moments = new Map<string, ExpectedTensor>();
  for (const [name, t] of model.tensors) {
    for (const prefix of ["m.", "v."]) moments.set(prefix + name, { shape: t.shape, dtype: t.dtype });
  }
  checkTensors(optimizer, moments, optimizerPath, modelPath);
  checkFinite(optimizer, optimizerPath);
  return optimizer;
}

async function readRequired(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${path} is missing`);
    throw e;
  }
}

function parseRunInfo(bytes: Uint8Array, source: string): RunInfo {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new CheckpointError(`${source} is not valid JSON (${(e as Error).message})`);
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version === "number" && version > CHECKPOINT_VERSION) {
    throw new CheckpointError(
      `${source} has version ${version}, written by a newer build; this build reads version ${CHECKPOINT_VERSION}`,
    );
  }
  const parsed = RUN_INFO.safeParse(json);
  if (parsed.success) return parsed.data;
  throw new CheckpointError(`${source} ${describeIssues(parsed.error, json)}`);
}

/** Each issue as `"key" = value given: what is wrong` (the value left out where there is none). */
function describeIssues(error: z.ZodError, json?: unknown): string {
  const issues = error.issues.map((i) => {
    let at: unknown = json;
    for (const k of i.path) {
      at = typeof at === "object" && at !== null ? (at as Record<PropertyKey, unknown>)[k] : undefined;
    }
    const given = at === undefined ? "" : ` = ${JSON.stringify(at)?.slice(0, 80)}`;
    return `"${i.path.join(".") || "(root)"}"${given}: ${i.message.replace(/^Invalid input: /, "")}`;
  });
  return `is malformed: ${issues.join("; ")}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
}

/** Makes renames in `dir` durable. Windows cannot open a directory for syncing; there it is skipped. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}
