/**
 * The digit classifier behind the generated-digit accuracy: a spec (examples/digit_classifier.ts)
 * trained with this compiler and kept as an ordinary checkpoint. The project ships one, weights only
 * (examples/checkpoints/digit_classifier/), so nobody waits minutes for it; a cache folder
 * (runs/digit-classifier/) takes precedence, and a checkpoint is used only when its spec hash
 * matches the spec's current source and it was trained for at least the steps asked for. Otherwise
 * the classifier is trained again into the cache (never into the shipped folder). Its own held-out
 * accuracy is kept in run.json, so every report can quote it.
 */
import { compile } from "../compiler/compile.ts";
import type { Plan } from "../compiler/plan.ts";
import type { AnyModel } from "../spec/model.ts";
import { resolveConfig } from "../spec/config.ts";
import type { DataSource } from "../spec/data.ts";
import { captureCheckpoint, loadCheckpoint, saveCheckpoint, specHash } from "../runtime/checkpoint.ts";
import { describeAdapter, type DeviceHandle, openDevice } from "../runtime/device.ts";
import { Executor } from "../runtime/executor.ts";
import { CheckpointError } from "../runtime/file_errors.ts";
import { learningRate } from "../runtime/schedule.ts";

export interface ClassifierOptions {
  /** A spec with inputs x [batch, pixels], y [batch], a "logits" entry and a data source. */
  readonly model: AnyModel;
  /** Its file, recorded in run.json and hashed to tell a stale cache. */
  readonly specPath: string;
  /** Cache folder (a run directory). */
  readonly dir: string;
  /** A checkpoint folder shipped with the project, read (never written) when the cache has none. */
  readonly shipped?: string;
  /** Training steps when it must be trained (default: the spec's `training.steps`, else 2000). */
  readonly steps?: number;
  readonly handle?: DeviceHandle;
  readonly log?: (line: string) => void;
}

export interface DigitClassifier {
  /** Accuracy on the data source's held-out batches. */
  readonly testAccuracy: number;
  /** Trained by this call (false: loaded from the cache or the shipped checkpoint). */
  readonly trained: boolean;
  /** Where the weights came from: the cache folder, the shipped one, or this call's training. */
  readonly source: string;
  /** The most likely class of each image (pixels as the spec's x rows: 28x28 in [0, 1]). */
  classify(images: readonly Float32Array[]): Promise<Int32Array>;
  destroy(): void;
}

const METRIC = "test_accuracy";

export async function digitClassifier(opts: ClassifierOptions): Promise<DigitClassifier> {
  const { model, specPath } = opts;
  if (!model.data || !model.entries?.logits) {
    throw new Error(`classifier spec ${specPath} needs a data source and a "logits" entry`);
  }
  const batch = model.training?.batch ?? model.dims?.batch ?? 64;
  const handle = opts.handle ?? await openDevice();
  const config = resolveConfig(model.config, {}, specPath) as Record<string, unknown>;
  const plan = compile(model, {
    dims: { batch },
    entries: ["trainStep", "logits"],
    adapterClass: describeAdapter(handle).adapterClass,
    optimizer: { weightDecay: model.training?.weightDecay ?? 0.01 },
  });
  const executor = await Executor.create(plan, { handle, seed: 0 });
  try {
    return await prepare(opts, plan, executor, batch, config);
  } catch (e) {
    executor.destroy();
    throw e;
  }
}

/** Loads the cached weights into `executor`, or trains and caches them. */
async function prepare(
  opts: ClassifierOptions,
  plan: Plan,
  executor: Executor,
  batch: number,
  config: Record<string, unknown>,
): Promise<DigitClassifier> {
  const { model, specPath, dir } = opts;
  const log = opts.log ?? (() => {});
  const source = model.data!(config as never, { batch });
  const hash = await specHash(await Deno.readTextFile(specPath));
  const classify = (images: readonly Float32Array[]) => classifyRows(executor, plan, batch, images);

  const steps = opts.steps ?? model.training?.steps ?? 2000;
  let testAccuracy = await loadCached(dir, plan, hash, steps, executor);
  let from = dir;
  if (testAccuracy === undefined && opts.shipped) {
    testAccuracy = await loadCached(opts.shipped, plan, hash, steps, executor);
    from = opts.shipped;
  }
  const trained = testAccuracy === undefined;
  if (testAccuracy === undefined) {
    const peak = model.training?.lr ?? 2e-3;
    const schedule = { peak, warmup: model.training?.warmup ?? 0, total: steps, floor: peak / 10 };
    log(`training the digit classifier (${specPath}): ${steps} steps of ${batch}; ${source.describe()}`);
    const started = performance.now();
    for (let step = 0; step < steps; step++) {
      const out = await executor.run("trainStep", source.batch(step, 0), {
        lr: learningRate(step, schedule),
      });
      if ((step + 1) % 500 === 0 || step + 1 === steps) {
        log(`  step ${step + 1}/${steps}  loss ${out.loss![0]!.toFixed(4)}`);
      }
    }
    testAccuracy = await heldOutAccuracy(source, classify);
    log(
      `  trained in ${((performance.now() - started) / 1000).toFixed(1)} s; test accuracy ${
        pct(testAccuracy)
      }`,
    );
    const parts = await captureCheckpoint(executor, {
      spec: { path: specPath, name: model.name, hash },
      config: config as never,
      dims: { batch },
      data: { epoch: 0, index: 0 },
      rng: { seed: 0 },
      metrics: { [METRIC]: testAccuracy },
    });
    await saveCheckpoint(dir, parts);
    from = `trained now into ${dir}`;
  }
  return { testAccuracy, trained, source: from, classify, destroy: () => executor.destroy() };
}

/**
 * The cached accuracy after loading the cached weights, or undefined when there is no usable cache:
 * none, another spec source, or fewer training steps than asked for.
 */
async function loadCached(dir: string, plan: Plan, hash: string, steps: number, executor: Executor) {
  try {
    const cached = await loadCheckpoint(dir, { params: plan.params });
    const accuracy = cached.run.metrics[METRIC];
    if (cached.run.spec.hash !== hash || typeof accuracy !== "number" || cached.run.step < steps) {
      return undefined;
    }
    await executor.setAllParams(
      new Map(plan.params.map((p) => [p.path, cached.model.tensors.get(p.path)!.data as Float32Array])),
    );
    return accuracy;
  } catch (e) {
    if (e instanceof CheckpointError) return undefined;
    throw e;
  }
}

async function heldOutAccuracy(
  source: DataSource,
  classify: (images: readonly Float32Array[]) => Promise<Int32Array>,
): Promise<number> {
  let [right, total] = [0, 0];
  for (let i = 0; i < (source.evalBatches ?? 0); i++) {
    const { x, y } = source.evalBatch!(i) as { x: Float32Array; y: Int32Array };
    const rows = y.length;
    const pixels = x.length / rows;
    const predicted = await classify(
      Array.from({ length: rows }, (_, r) => x.subarray(r * pixels, (r + 1) * pixels)),
    );
    for (let r = 0; r < rows; r++) right += predicted[r] === y[r] ? 1 : 0;
    total += rows;
  }
  if (total === 0) throw new Error("the classifier's data source has no held-out batches");
  return right / total;
}

async function classifyRows(
  executor: Executor,
  plan: Plan,
  batch: number,
  images: readonly Float32Array[],
): Promise<Int32Array> {
  const pixels = plan.entries.logits!.inputs.find((s) => s.name === "x")!.shape[1]!;
  const out = new Int32Array(images.length);
  for (let first = 0; first < images.length; first += batch) {
    const x = new Float32Array(batch * pixels);
    const part = images.slice(first, first + batch);
    part.forEach((img, i) => {
      if (img.length !== pixels) {
        throw new Error(`classifier: image ${first + i} has ${img.length} values, expected ${pixels}`);
      }
      x.set(img, i * pixels);
    });
    const logits = (await executor.run("logits", { x })).logits as Float32Array;
    const classes = logits.length / batch;
    part.forEach((_, i) => {
      let best = 0;
      for (let k = 1; k < classes; k++) if (logits[i * classes + k]! > logits[i * classes + best]!) best = k;
      out[first + i] = best;
    });
  }
  return out;
}

export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
