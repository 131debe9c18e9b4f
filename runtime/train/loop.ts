/**
 * The training loop. Each step trains on `data.batch(step, seed)` at `learningRate(step)`, and the
 * executor feeds the in-graph RNG [seed, step + 1]: everything a step sees is a function of the
 * seed and the step, so a run resumed from a checkpoint computes bit for bit the losses of one
 * that never stopped. With `ema` set it also keeps a moving average of the parameters (saved beside
 * them), updated every `emaEvery` steps and at each save; a run resumed from one of its periodic
 * checkpoints keeps the same average as one that never stopped.
 */
import type { AnyModel } from "../../spec/model.ts";
import { captureCheckpoint, restoreCheckpoint, restoreParameters, saveCheckpoint } from "../checkpoint.ts";
import type { DeviceHandle } from "../device.ts";
import { Executor } from "../executor.ts";
import { learningRate } from "../schedule.ts";
import { nonFiniteInput } from "./batch_check.ts";
import { type PreparedRun, prepareRun } from "./prepare.ts";
import { LogClock, logLine, type LogRecord } from "./progress.ts";
import { appendLog, type LogLine, readLog, rewriteLog, writeLossCurve, writeSettings } from "./run_dir.ts";
import type { SampleHook } from "./sample_hooks.ts";
import { TrainError, type TrainSettings } from "./settings.ts";
import { WeightAverage } from "./weight_average.ts";

export interface TrainOptions {
  readonly model: AnyModel;
  /** The spec file, recorded in run.json with a hash of its source. */
  readonly specPath: string;
  /** The run directory: checkpoint/, log.jsonl, loss.svg, training.json. */
  readonly out: string;
  /** Config overrides (dotted keys reach nested groups); validated by the spec's schema. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Dim bindings ("batch", "seq"). */
  readonly dims?: Readonly<Record<string, number>>;
  /** Settings given explicitly; they win over the spec's `training` and a resumed run's. */
  readonly settings?: Partial<TrainSettings>;
  /** Continue the run in `out` from its checkpoint. Without it, a run directory in use is refused. */
  readonly resume?: boolean;
  /**
   * Start a new run from the parameters of this run directory or checkpoint folder (fine-tuning):
   * its config and dims are the defaults under `config` and `dims`, the parameters must fit the
   * plan exactly, and the optimizer, step and lr schedule start afresh. Excludes `resume`.
   */
  readonly initFrom?: string | undefined;
  readonly onLog?: (record: LogRecord) => void;
  /** One-line messages for a person: the resume point, spec changes, a missing sample hook. */
  readonly onNote?: (message: string) => void;
  /** Aborting stops after the current step and saves a checkpoint first (the CLI's Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Used instead of the hook registered for the spec's kind. */
  readonly sampleHook?: SampleHook;
  readonly handle?: DeviceHandle;
}

export interface TrainResult {
  readonly dir: string;
  /** Steps taken when training started (a resume) and when it stopped. */
  readonly startStep: number;
  readonly step: number;
  /** Stopped early by `signal`; the checkpoint holds `step`. */
  readonly interrupted: boolean;
  /** What this call logged, in order. */
  readonly records: readonly LogRecord[];
  readonly settings: TrainSettings;
  readonly config: unknown;
  readonly dims: Readonly<Record<string, number>>;
}

/** Trains the spec's model on its data source, with checkpoints, a log and a loss curve in `out`. */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const run = await prepareRun(opts);
  run.notes.forEach((n) => opts.onNote?.(n));
  const { plan, data, settings } = run;
  const startStep = run.checkpoint?.run.step ?? 0;
  const result = (stopped: Stopped): TrainResult => ({
    dir: opts.out,
    startStep,
    ...stopped,
    settings,
    config: plan.config,
    dims: plan.dims,
  });
  if (startStep >= settings.steps) {
    opts.onNote?.(
      `the checkpoint is at step ${startStep} of ${settings.steps}: nothing to train (raise --steps)`,
    );
    return result({ step: startStep, interrupted: false, records: [] });
  }
  opts.onNote?.(
    `${startStep > 0 ? `resuming at step ${startStep}` : "training"} ${plan.model}: ${data.describe()}`,
  );

  const executor = await Executor.create(plan, { seed: settings.seed, handle: run.handle });
  try {
    if (run.checkpoint) await restoreCheckpoint(executor, run.checkpoint);
    else if (run.init) await restoreParameters(executor, run.init);
    const average = await startAverage(run, executor, opts.onNote);
    await Deno.mkdir(opts.out, { recursive: true });
    // A resume drops what was logged after its checkpoint: those steps are trained again.
    const lines = opts.resume ? await readLog(opts.out, startStep) : [];
    if (opts.resume) await rewriteLog(opts.out, lines);
    return result(await loop(opts, run, executor, lines, average));
  } finally {
    executor.destroy();
  }
}

type Stopped = Pick<TrainResult, "step" | "interrupted" | "records">;

/** The run's moving average: the checkpoint's, or one starting at the present parameters. */
async function startAverage(
  run: PreparedRun,
  executor: Executor,
  onNote: ((message: string) => void) | undefined,
): Promise<WeightAverage | undefined> {
  const { settings, checkpoint } = run;
  if (settings.ema === 0) {
    if (checkpoint?.ema) onNote?.(`ema is 0: the checkpoint's moving average is not kept from here on`);
    return undefined;
  }
  if (checkpoint?.ema) {
    const values = new Map([...checkpoint.ema.tensors].map(([k, t]) => [k, t.data as ArrayLike<number>]));
    return new WeightAverage(settings.ema, values, checkpoint.run.step);
  }
  if (checkpoint) {
    onNote?.(`starting a moving average of the parameters (ema ${settings.ema}) at step ${executor.step}`);
  }
  return new WeightAverage(settings.ema, await executor.getAllParams(), executor.step);
}

/** Trains from the executor's step to `settings.steps`, or until `opts.signal` aborts. */
async function loop(
  opts: TrainOptions,
  run: PreparedRun,
  executor: Executor,
  lines: LogLine[],
  average: WeightAverage | undefined,
): Promise<Stopped> {
  const { plan, data, settings } = run;
  const schedule = {
    peak: settings.lr,
    warmup: settings.warmup,
    total: settings.steps,
    floor: settings.lrFloor,
  };
  const records: LogRecord[] = [];
  const clock = new LogClock(settings.logEvery);
  const began = performance.now();
  clock.start(executor.step, began);
  let savedAt = executor.step;
  const save = async (latest: Record<string, number>) => {
    await writeSettings(opts.out, settings);
    const parts = await captureCheckpoint(executor, {
      spec: run.spec,
      config: plan.config as never,
      dims: { ...plan.dims },
      // Batches are pure functions of (seed, step): the next one is data.batch(index, seed).
      data: { epoch: 0, index: executor.step },
      rng: { seed: settings.seed },
      metrics: latest,
      ...(run.initFrom ? { initFrom: run.initFrom } : {}),
    });
    // The parameters just read back bring the average up to this step (no second readback).
    average?.update(parts.params, executor.step);
    await saveCheckpoint(opts.out, average ? { ...parts, ema: average.values } : parts);
    await writeLossCurve(opts.out, `${plan.model}: loss`, lines);
    savedAt = executor.step;
  };

  while (executor.step < settings.steps) {
    const lr = learningRate(executor.step, schedule);
    const batch = data.batch(executor.step, settings.seed);
    const bad = nonFiniteInput(batch);
    if (bad) {
      throw new TrainError(
        `the batch of step ${executor.step + 1} holds ${bad} (from the spec's data source); stopping ` +
          `before training on it (the checkpoint of step ${savedAt} stays)`,
      );
    }
    const out = await executor.run("trainStep", batch, { lr });
    const step = executor.step;
    const loss = out.loss![0]!;
    const metrics: Record<string, number> = {};
    for (const [name, values] of Object.entries(out)) if (name !== "loss") metrics[name] = values[0]!;
    if (!Number.isFinite(loss)) {
      throw new TrainError(
        `the loss is ${loss} at step ${step}; stopping without saving it (the checkpoint of step ` +
          `${savedAt} stays). Try a lower --lr, a longer --warmup or --clip`,
      );
    }
    if (average && step % settings.emaEvery === 0) average.update(await executor.getAllParams(), step);
    const done = step === settings.steps;
    const stopping = () => done || opts.signal?.aborted === true;
    const periodic = settings.checkpointEvery > 0 && step % settings.checkpointEvery === 0;
    const now = performance.now();
    let gradNorm: number | undefined;
    if (clock.due(step, now, periodic || stopping())) {
      gradNorm = await executor.getScalar("gradNorm");
      if (!Number.isFinite(gradNorm)) {
        throw new TrainError(
          `the gradient norm is ${gradNorm} at step ${step} (loss ${loss}); stopping without saving it ` +
            `(the checkpoint of step ${savedAt} stays). Try a lower --lr, a longer --warmup or --clip`,
        );
      }
      const warmingUp = records.length === 0;
      const ms = clock.mark(step, now);
      const record: LogRecord = {
        step,
        steps: settings.steps,
        loss,
        metrics,
        lr,
        gradNorm,
        ms,
        tokensPerSecond: data.tokensPerBatch / (ms / 1000),
        elapsed: (now - began) / 1000,
        eta: warmingUp ? NaN : ((settings.steps - step) * ms) / 1000,
      };
      records.push(record);
      lines.push(logLine(record));
      await appendLog(opts.out, logLine(record));
      opts.onLog?.(record);
    }
    // Asked after the log: `onLog` may be what aborts.
    const last = stopping();
    const saveNow = periodic || last;
    const sampleNow = run.hook !== undefined && (step % settings.sampleEvery === 0 || done);
    if (saveNow) await save({ loss, ...metrics, lr, grad_norm: gradNorm ?? NaN });
    if (sampleNow) {
      await run.hook!({ executor, plan, model: opts.model, config: plan.config, step, dir: opts.out });
    }
    // Saving and sampling are not training: the next log's ms/step leaves them out.
    if (saveNow || sampleNow) clock.start(step, performance.now());
    if (last && !done) return { step, interrupted: true, records };
  }
  return { step: executor.step, interrupted: false, records };
}
