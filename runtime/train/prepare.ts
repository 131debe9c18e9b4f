/**
 * Everything a run needs before its first step, checked before anything is written: the spec's data
 * source, the resume point, config, dims and settings, the compiled plan, and a first batch that fits
 * the loss entry. A mistake found here leaves the run directory exactly as it was.
 */
import { compile } from "../../compiler/compile.ts";
import { gatherInputs, rowsInputName } from "../../compiler/gather_inputs.ts";
import type { Plan } from "../../compiler/plan.ts";
import type { Batch, DataSource, DeviceData } from "../../spec/data.ts";
import { type Checkpoint, CHECKPOINT_FILES, loadCheckpoint, type RunInfo, specHash } from "../checkpoint.ts";
import { CheckpointError } from "../file_errors.ts";
import { checkAgainstParams } from "../safetensors.ts";
import { describeAdapter, type DeviceHandle, openDevice } from "../device.ts";
import { resolveRunConfig, resolveRunDims } from "./bindings.ts";
import { resumeMismatches, savedBindings } from "./resume.ts";
import { readSavedSettings, refuseExistingRun, stoppedBeforeFirstCheckpoint } from "./run_dir.ts";
import { type SampleHook, sampleHookFor } from "./sample_hooks.ts";
import { optimizerOf, resolveSettings, TrainError, type TrainSettings } from "./settings.ts";
import type { TrainOptions } from "./loop.ts";

export interface PreparedRun {
  readonly plan: Plan;
  readonly data: DataSource;
  readonly settings: TrainSettings;
  readonly handle: DeviceHandle;
  readonly spec: { readonly path: string; readonly name: string; readonly hash: string };
  readonly checkpoint: Checkpoint | undefined;
  /** With `--init-from`: the checkpoint whose parameters the run starts from (step 0, fresh optimizer). */
  readonly init: Checkpoint | undefined;
  /** What run.json records of where the parameters began: this start's, or the resumed run's. */
  readonly initFrom: RunInfo["initFrom"];
  readonly hook: SampleHook | undefined;
  /** The batch of a step: from the host, or (device-resident data) the rows the plan gathers. */
  readonly batchAt: (step: number) => Batch;
  /** The source's device tables, when its batches are gathered on the device (upload them once). */
  readonly device: DeviceData | undefined;
  /** Lines for a person about choices made (resume point, spec changes, missing hook). */
  readonly notes: readonly string[];
}

export async function prepareRun(opts: TrainOptions): Promise<PreparedRun> {
  const { model, out: dir } = opts;
  const makeData = model.data;
  if (!makeData) {
    throw new TrainError(
      `spec "${model.name}"${model.site ? ` (${model.site})` : ""} declares no training data: ` +
        `add \`data: (config, dims) => DataSource\` to its model({...}) (see spec/data.ts)`,
    );
  }
  const spec = { path: opts.specPath, name: model.name, hash: await specHash(await readSpec(opts.specPath)) };
  const notes: string[] = [];
  let checkpoint: Checkpoint | undefined;
  let savedSettings: Partial<TrainSettings> | undefined;
  let init: Checkpoint | undefined;
  if (opts.resume && opts.initFrom !== undefined) {
    throw new TrainError(
      `--resume continues the run in ${dir} and --init-from ${opts.initFrom} starts a new one from ` +
        `another run's parameters; give one of them`,
    );
  }
  if (opts.resume && await stoppedBeforeFirstCheckpoint(dir)) {
    notes.push(`${dir} has no checkpoint yet (the run stopped before its first save): starting it over`);
    savedSettings = await readSavedSettings(dir);
  } else if (opts.resume) {
    checkpoint = await loadCheckpoint(dir);
    savedSettings = { ...await readSavedSettings(dir), seed: checkpoint.run.rng.seed };
    if (checkpoint.run.spec.hash !== spec.hash) {
      notes.push(`the source of ${spec.path} changed since the checkpoint was written (its hash differs)`);
    }
  } else {
    await refuseExistingRun(dir);
  }
  if (opts.initFrom !== undefined) {
    try {
      init = await loadCheckpoint(opts.initFrom);
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      throw new TrainError(`cannot start from ${opts.initFrom} (--init-from): ${e.message}`);
    }
    notes.push(
      `starting from the parameters of ${init.path} (step ${init.run.step}); ` +
        `the optimizer, the step count and the lr schedule start afresh`,
    );
  }
  // A started run takes the config and dims its parameters were trained with, under what is given.
  const source = checkpoint ?? init;
  const saved = source && savedBindings(source);
  const config = resolveRunConfig(model, opts.config ?? {}, saved?.config);
  const dims = resolveRunDims(model, opts.dims ?? {}, saved?.dims);
  const settings = resolveSettings(model.training, savedSettings, opts.settings ?? {});

  const handle = opts.handle ?? await openDevice();
  let hook: SampleHook | undefined;
  // A budget may set a sample period after its first steps, and samples at its sizing step.
  if (settings.sampleEvery > 0 || opts.budget) {
    hook = opts.sampleHook ?? sampleHookFor(model);
    if (!hook && settings.sampleEvery > 0) {
      notes.push(`no sample hook is registered for spec "${model.name}"; sampleEvery is ignored`);
    }
  }
  const compiled = compile(model, {
    config,
    dims,
    // A sample hook runs the spec's other entries (denoise, logits) on the training parameters;
    // the stateful ones (a KV cache sized by the training batch) are for generation, not for hooks.
    entries: [
      "trainStep",
      "forward",
      ...(hook ? Object.entries(model.entries ?? {}).filter(([, e]) => !e.state).map(([name]) => name) : []),
    ],
    adapterClass: describeAdapter(handle).adapterClass,
    adapterKey: describeAdapter(handle).cacheKey,
    // The moving average is a kernel of the plan (device_average.ts), so --ema costs no readback.
    average: settings.ema > 0,
    optimizer: optimizerOf(settings),
  });
  if (checkpoint) {
    const problems = resumeMismatches(checkpoint, compiled);
    if (problems.length > 0) {
      throw new TrainError(`cannot resume from ${checkpoint.path}:\n  ${problems.join("\n  ")}`);
    }
  }
  if (init) {
    try {
      checkAgainstParams(init.model, compiled.params, `${init.path}/${CHECKPOINT_FILES.model}`);
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      throw new TrainError(`cannot start from ${init.path}: ${e.message}`);
    }
  }
  const data = makeData(compiled.config as never, compiled.dims);
  const start = checkpoint?.run.step ?? 0;
  const sourceName = `${model.name}'s data source (${data.describe()})`;
  checkBatch(data.batch(start, settings.seed), compiled, sourceName);
  // A source that can keep its dataset on the device does, unless asked not to (--host-data): the
  // plan then gathers the images itself and a step's host work is tokens, layout and row indices.
  const device = opts.hostData ? undefined : data.device;
  let plan = compiled;
  let batchAt = (step: number) => data.batch(step, settings.seed);
  if (device) {
    const limit = handle.device.limits.maxStorageBufferBindingSize;
    plan = gatherInputs(compiled, "trainStep", device.gathers, device.tables, limit);
    batchAt = (step) => {
      const { batch, rows } = device.indexedBatch(step, settings.seed);
      const named = Object.entries(rows).map(([input, r]) => [rowsInputName(input), r] as const);
      return { ...batch, ...Object.fromEntries(named) };
    };
    checkBatch(batchAt(start), plan, `${sourceName}, gathered on the device`);
    const mb = Object.values(device.tables).reduce((n, t) => n + t.length * 4, 0) / 1e6;
    notes.push(
      `batches are gathered on the device from ${mb.toFixed(1)} MB of tables (--host-data: on the host)`,
    );
  }
  const initFrom = init
    ? { path: init.path, step: init.run.step, specHash: init.run.spec.hash }
    : checkpoint?.run.initFrom;
  return { plan, data, settings, handle, spec, checkpoint, init, initFrom, hook, batchAt, device, notes };
}

async function readSpec(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new TrainError(`cannot read spec file ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Names every input of the loss entry that a batch lacks, has extra, or gives the wrong size. */
function checkBatch(batch: Batch, plan: Plan, source: string): void {
  const slots = plan.entries.trainStep!.inputs.filter((s) => s.name !== "seed");
  const problems: string[] = [];
  for (const slot of slots) {
    const need = slot.shape.reduce((a, b) => a * b, 1);
    const got = batch[slot.name];
    const what = `"${slot.name}" ${slot.dtype}[${slot.shape.join(", ")}]`;
    if (got === undefined) problems.push(`it lacks ${what}`);
    else if (got.length !== need) problems.push(`${what} needs ${need} values, it gives ${got.length}`);
  }
  for (const name of Object.keys(batch)) {
    if (!slots.some((s) => s.name === name)) problems.push(`"${name}" is not an input of the loss entry`);
  }
  if (problems.length > 0) {
    throw new TrainError(`${source} gives batches that do not fit the loss entry: ${problems.join("; ")}`);
  }
}
