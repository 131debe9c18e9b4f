/**
 * The training loop. Each step trains on `data.batch(step, seed)` at `learningRate(step)`, and the
 * executor feeds the in-graph RNG [seed, step + 1]: everything a step sees is a function of the
 * seed and the step, so a run resumed from a checkpoint computes bit for bit the losses of one
 * that never stopped, and so does a run with any number of steps in flight.
 *
 * Up to `inFlight` steps are submitted before the loop waits on the oldest one's results
 * (in_flight.ts); the host assembles batch N+1 while the device runs step N. Results are taken out
 * in order: the log, progress and the non-finite check name the step they belong to. A step whose
 * device state the loop must see (a checkpoint, a sample, the last step) is a boundary: nothing is
 * submitted past it until it has been taken out, so the save reads exactly that step's parameters.
 * A non-finite loss or gradient norm stops the run at the first step that has one; the steps behind
 * it in flight are dropped and the last checkpoint (all of whose steps were finite) is kept.
 *
 * With `ema` set the plan keeps a moving average of the parameters on the device (device_average.ts),
 * folded in every `emaEvery` steps and at each save, and saved beside them; a run resumed from one of
 * its periodic checkpoints keeps the same average as one that never stopped.
 */
import type { AnyModel } from "../../spec/model.ts";
import { tableBufferName } from "../../compiler/gather_inputs.ts";
import { captureCheckpoint, restoreCheckpoint, restoreParameters, saveCheckpoint } from "../checkpoint.ts";
import { DeviceAverage } from "./device_average.ts";
import { StepsInFlight } from "./in_flight.ts";
import type { DeviceHandle } from "../device.ts";
import { Executor } from "../executor.ts";
import { learningRate } from "../schedule.ts";
import { nonFiniteInput } from "./batch_check.ts";
import { type PreparedRun, prepareRun } from "./prepare.ts";
import { LogClock, logLine, type LogRecord } from "./progress.ts";
import { appendLog, type LogLine, readLog, rewriteLog, writeLossCurve, writeSettings } from "./run_dir.ts";
import type { SampleHook } from "./sample_hooks.ts";
import { DEFAULT_MEASURE_STEPS, type TrainBudget } from "./budget.ts";
import { TrainError, type TrainSettings } from "./settings.ts";

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
  /**
   * Assemble every batch on the host even when the data source can keep its dataset on the device
   * (spec/data.ts `DeviceData`): the same rows, with the images computed in f64 on the host.
   */
  readonly hostData?: boolean;
  readonly onLog?: (record: LogRecord) => void;
  /** One-line messages for a person: the resume point, spec changes, a missing sample hook. */
  readonly onNote?: (message: string) => void;
  /** Aborting stops after the steps in flight and saves a checkpoint first (the CLI's Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Used instead of the hook registered for the spec's kind. */
  readonly sampleHook?: SampleHook;
  /**
   * Size the run to a time budget after a few measured steps (budget.ts): the total steps (capped
   * by `settings.steps`) and the sample period come from it, and are what training.json records.
   */
  readonly budget?: TrainBudget;
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
  /** The settings trained with: `steps` and `sampleEvery` as a budget sized them. */
  readonly settings: TrainSettings;
  readonly config: unknown;
  readonly dims: Readonly<Record<string, number>>;
  /** Where the loop's wall time went over the steps this call trained (saves and samples left out). */
  readonly time: LoopTime;
}

/** Milliseconds summed over `steps` train steps. */
export interface LoopTime {
  readonly steps: number;
  /** From the first submit to the last step's results. */
  readonly wallMs: number;
  /** Host work: batch assembly plus recording and submitting the step. */
  readonly batchMs: number;
  readonly submitMs: number;
  /** Waiting on results that were not back yet: the time the host was ahead of the device. */
  readonly waitMs: number;
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
    config: plan.config,
    dims: plan.dims,
  });
  if (startStep >= settings.steps) {
    opts.onNote?.(
      `the checkpoint is at step ${startStep} of ${settings.steps}: nothing to train (raise --steps)`,
    );
    const time = { steps: 0, wallMs: 0, batchMs: 0, submitMs: 0, waitMs: 0 };
    return result({ step: startStep, interrupted: false, records: [], time, settings });
  }
  opts.onNote?.(
    `${startStep > 0 ? `resuming at step ${startStep}` : "training"} ${plan.model}: ${data.describe()}`,
  );

  const executor = await Executor.create(plan, { seed: settings.seed, handle: run.handle });
  try {
    for (const [name, values] of Object.entries(run.device?.tables ?? {})) {
      await executor.setData(tableBufferName(name), values);
    }
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

type Stopped = Pick<TrainResult, "step" | "interrupted" | "records" | "time" | "settings">;

/** The run's moving average: the checkpoint's, or one starting at the present parameters. */
async function startAverage(
  run: PreparedRun,
  executor: Executor,
  onNote: ((message: string) => void) | undefined,
): Promise<DeviceAverage | undefined> {
  const { settings, checkpoint } = run;
  if (settings.ema === 0) {
    if (checkpoint?.ema) onNote?.(`ema is 0: the checkpoint's moving average is not kept from here on`);
    return undefined;
  }
  if (checkpoint?.ema) {
    const values = new Map([...checkpoint.ema.tensors].map(([k, t]) => [k, t.data as ArrayLike<number>]));
    return await DeviceAverage.start(executor, settings.ema, values);
  }
  if (checkpoint) {
    onNote?.(`starting a moving average of the parameters (ema ${settings.ema}) at step ${executor.step}`);
  }
  return await DeviceAverage.start(executor, settings.ema);
}

/** Trains from the executor's step to `settings.steps`, or until `opts.signal` aborts. */
async function loop(
  opts: TrainOptions,
  run: PreparedRun,
  executor: Executor,
  lines: LogLine[],
  average: DeviceAverage | undefined,
): Promise<Stopped> {
  const { plan, data } = run;
  let settings = run.settings;
  let total = settings.steps;
  let schedule = { peak: settings.lr, warmup: settings.warmup, total, floor: settings.lrFloor };
  const records: LogRecord[] = [];
  const clock = new LogClock(settings.logEvery);
  const began = performance.now();
  clock.start(executor.step, began);
  let savedAt = executor.step;
  const save = async (latest: Record<string, number>) => {
    await writeSettings(opts.out, settings);
    await average?.update(executor.step);
    // One command buffer copies params, moments and the average; one readback brings them home.
    const parts = await captureCheckpoint(executor, {
      spec: run.spec,
      config: plan.config as never,
      dims: { ...plan.dims },
      // Batches are pure functions of (seed, step): the next one is data.batch(index, seed).
      data: { epoch: 0, index: executor.step },
      rng: { seed: settings.seed },
      metrics: latest,
      ...(run.initFrom ? { initFrom: run.initFrom } : {}),
    }, { average: average !== undefined });
    await saveCheckpoint(opts.out, parts);
    await writeLossCurve(opts.out, `${plan.model}: loss`, lines);
    savedAt = executor.step;
  };
  const periodic = (step: number) => settings.checkpointEvery > 0 && step % settings.checkpointEvery === 0;
  const samples = (step: number) =>
    run.hook !== undefined && settings.sampleEvery > 0 &&
    (step % settings.sampleEvery === 0 || step === total);
  const firstStep = executor.step;
  // A budget sizes the run at this step, after `measureSteps` timed steps (the first is not timed).
  const measureSteps = opts.budget?.measureSteps ?? DEFAULT_MEASURE_STEPS;
  const sizingStep = opts.budget && firstStep + 1 + measureSteps < total
    ? firstStep + 1 + measureSteps
    : undefined;
  let firstTakenAt = NaN;
  // The first step is a boundary too under a budget: every measured step is then submitted after it
  // was taken out, so the interval times exactly `measureSteps` steps (on lavapipe a submit blocks
  // until its step has run, and steps queued behind step 1 would run before the clock starts).
  const timedFrom = sizingStep === undefined ? undefined : firstStep + 1;
  const boundary = (step: number) =>
    step === total || periodic(step) || samples(step) || step === sizingStep || step === timedFrom;
  const aborted = () => opts.signal?.aborted === true;
  const inFlight = new StepsInFlight(settings.inFlight);
  const time = { steps: 0, wallMs: 0, batchMs: 0, submitMs: 0, waitMs: 0 };
  let paused = 0; // saves and samples, left out of wallMs
  let refused: ((kept: number) => TrainError) | undefined; // a batch that must not be trained on
  const timed = () => ({
    ...time,
    steps: executor.step - firstStep,
    wallMs: performance.now() - began - paused,
  });

  try {
    while (true) {
      // Submit until the queue is full, a boundary step is in it, the run is done, or aborted.
      while (!inFlight.full && executor.step < total && !aborted() && !refused) {
        const newest = inFlight.newest;
        if (newest !== undefined && boundary(newest)) break;
        const lr = learningRate(executor.step, schedule);
        const t0 = performance.now();
        const batch = run.batchAt(executor.step);
        // A NaN in the inputs can give a finite loss (lavapipe's min/max drop NaN) while spoiling
        // the parameters, so the host part of every batch is checked before it is trained on. The
        // steps in flight before it are still taken out first: an earlier fault is named first.
        const bad = nonFiniteInput(batch);
        if (bad) {
          const step = executor.step + 1;
          refused = (kept: number) =>
            new TrainError(
              `the batch of step ${step} holds ${bad} (from the spec's data source); stopping ` +
                `before training on it (the checkpoint of step ${kept} stays)`,
            );
          break;
        }
        const t1 = performance.now();
        inFlight.add(await executor.submit("trainStep", batch, { lr }), lr);
        if (average && executor.step % settings.emaEvery === 0) await average.update(executor.step);
        time.batchMs += t1 - t0;
        time.submitMs += performance.now() - t1;
      }
      if (inFlight.size === 0) {
        if (refused) throw refused(savedAt);
        return { step: executor.step, interrupted: executor.step < total, records, time: timed(), settings };
      }

      const waitStart = performance.now();
      const { step, lr, out } = await inFlight.next();
      const takenAt = performance.now();
      time.waitMs += takenAt - waitStart;
      if (step === firstStep + 1) firstTakenAt = takenAt;
      const { loss: lossValues, ...rest } = out.outputs;
      const loss = lossValues![0]!;
      const gradNorm = out.gradNorm ?? NaN;
      const metrics: Record<string, number> = {};
      for (const [name, values] of Object.entries(rest)) metrics[name] = values[0]!;
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        await inFlight.discard();
        const what = Number.isFinite(loss)
          ? `the gradient norm is ${gradNorm} at step ${step} (loss ${loss})`
          : `the loss is ${loss} at step ${step}`;
        throw new TrainError(
          `${what}; stopping without saving it (the checkpoint of step ` +
            `${savedAt} stays). Try a lower --lr, a longer --warmup or --clip`,
        );
      }
      // The device holds this step's state only when nothing is in flight behind it.
      const current = inFlight.size === 0;
      const done = step === total;
      const stopping = () => current && (done || aborted());
      const now = performance.now();
      // Inside the measured window the steps are taken out in a burst (their submits ran them), so
      // an interval there would time the take-outs, not the steps: its records carry no pace, and
      // the sizing step's interval covers the whole window.
      const measuring = timedFrom !== undefined && step > timedFrom && step < sizingStep!;
      if (clock.due(step, now, periodic(step) || stopping())) {
        const warmingUp = records.length === 0 || measuring;
        const ms = measuring ? NaN : clock.mark(step, now);
        const record: LogRecord = {
          step,
          steps: total,
          loss,
          metrics,
          lr,
          gradNorm,
          ms,
          tokensPerSecond: data.tokensPerBatch / (ms / 1000),
          elapsed: (now - began) / 1000,
          eta: warmingUp ? NaN : ((total - step) * ms) / 1000,
        };
        records.push(record);
        lines.push(logLine(record));
        await appendLog(opts.out, logLine(record));
        opts.onLog?.(record);
      }
      if (!current) continue;
      if (step === sizingStep) {
        const sizingStart = performance.now();
        // The hook first: a caller may time a first sample to reserve time for what follows.
        if (run.hook && !samples(step)) {
          await run.hook({ executor, plan, model: opts.model, config: plan.config, step, dir: opts.out });
        }
        const pace = { step, msPerStep: (takenAt - firstTakenAt) / measureSteps, now: performance.now() };
        const sized = opts.budget!.size(pace);
        total = Math.max(step + 1, Math.min(settings.steps, Math.floor(sized.steps)));
        settings = {
          ...settings,
          steps: total,
          sampleEvery: Math.max(0, Math.floor(sized.sampleEvery ?? 0)),
        };
        schedule = { ...schedule, total };
        if (settings.warmup < step) {
          opts.onNote?.(
            `warmup (${settings.warmup}) ended before the budget sized the run at step ${step}: steps ` +
              `${settings.warmup + 1}..${step} decayed towards the spec's total, not the sized ${total}`,
          );
        }
        opts.onNote?.(
          `${pace.msPerStep.toFixed(1)} ms/step over ${measureSteps} steps: training ${total} steps` +
            (settings.sampleEvery > 0 ? `, sampling every ${settings.sampleEvery}` : ""),
        );
        clock.start(step, performance.now());
        paused += performance.now() - sizingStart;
      }
      // Asked after the log: `onLog` may be what aborts.
      const last = stopping();
      const saveNow = periodic(step) || last;
      const sampleNow = samples(step);
      const pauseStart = performance.now();
      if (saveNow) await save({ loss, ...metrics, lr, grad_norm: gradNorm });
      if (sampleNow) {
        await run.hook!({ executor, plan, model: opts.model, config: plan.config, step, dir: opts.out });
      }
      // Saving and sampling are not training: the next log's ms/step leaves them out.
      if (saveNow || sampleNow) clock.start(step, performance.now());
      paused += performance.now() - pauseStart;
      if (last) return { step, interrupted: !done, records, time: timed(), settings };
    }
  } finally {
    await inFlight.discard();
  }
}
