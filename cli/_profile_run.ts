/**
 * What `deno task profile` and `explain --measure` share: the plan a spec trains with, inputs for
 * one step of an entry, and profiling a plan's entry a few times on the device.
 */
import { compile } from "../compiler/mod.ts";
import type { EntryPlan, Plan } from "../compiler/plan.ts";
import { describeAdapter, type DeviceHandle, Executor, openDevice } from "../runtime/mod.ts";
import { type Profile, profileEntry, type Timing } from "../runtime/profile/mod.ts";
import { resolveRunDims } from "../runtime/train/bindings.ts";
import { optimizerOf, resolveSettings } from "../runtime/train/settings.ts";
import type { AnyModel } from "../spec/mod.ts";

/** The plan `deno task train` would build (its dims, optimizer and adapter class), for one entry. */
export function trainingPlan(
  model: AnyModel,
  handle: DeviceHandle,
  opts: { entry: string; config: Record<string, unknown>; dims: Record<string, number> },
): Plan {
  const settings = resolveSettings(model.training, undefined, {});
  const adapter = describeAdapter(handle);
  return compile(model, {
    config: opts.config,
    dims: resolveRunDims(model, opts.dims, undefined),
    entries: [opts.entry],
    adapterClass: adapter.adapterClass,
    adapterKey: adapter.cacheKey,
    optimizer: optimizerOf(settings),
  });
}

export interface StepInputs {
  readonly inputs: Record<string, ArrayLike<number>>;
  /** Where they came from, for a person: the spec's data source or made-up values. */
  readonly source: string;
}

/**
 * Inputs for one step of `entry`: the spec's training batch 0 when it has a data source whose batch
 * covers the entry's inputs (trainStep; forward usually takes the same), else made-up values
 * (floats uniform in [-1, 1) from a fixed seed, integers and booleans 0: valid token ids and masks,
 * and the timing of these kernels does not depend on the values).
 */
export function stepInputs(model: AnyModel, plan: Plan, entry: string): StepInputs {
  const e = entryOf(plan, entry);
  const wanted = e.inputs.filter((s) => s.name !== "seed");
  if (model.data) {
    const data = model.data(plan.config as never, plan.dims);
    const batch = data.batch(0, 0);
    const fits = wanted.every((s) => batch[s.name]?.length === s.shape.reduce((a, b) => a * b, 1));
    if (fits) {
      return {
        inputs: Object.fromEntries(wanted.map((s) => [s.name, batch[s.name]!])),
        source: `batch 0 of ${data.describe()}`,
      };
    }
  }
  let state = 0x9e3779b9;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
  const inputs = Object.fromEntries(wanted.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    return [s.name, s.dtype === "f32" ? Float32Array.from({ length: n }, uniform) : new Int32Array(n)];
  }));
  return { inputs, source: "made-up values (floats in [-1, 1), integers 0)" };
}

export interface ProfileRun {
  readonly timing?: Timing;
  /** Warm-up runs before the first profiled step (default 2). */
  readonly warmup?: number;
  /** Profiled steps (default 1). */
  readonly steps?: number;
  readonly lr?: number;
  readonly handle?: DeviceHandle;
}

/** Profiles `steps` steps of `entry` on a fresh executor, after the warm-up; frees it afterwards. */
export async function profilePlan(
  plan: Plan,
  entry: string,
  inputs: Readonly<Record<string, ArrayLike<number>>>,
  run: ProfileRun = {},
): Promise<Profile[]> {
  entryOf(plan, entry);
  const steps = run.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be an integer >= 1, got ${steps}`);
  const handle = run.handle ?? await openDevice();
  const ex = await Executor.create(plan, { seed: 1, handle, lr: run.lr ?? 1e-4 });
  try {
    const profiles: Profile[] = [];
    for (let i = 0; i < steps; i++) {
      profiles.push(
        await profileEntry(ex, entry, inputs, {
          warmup: i === 0 ? run.warmup ?? 2 : 0,
          seed: 1,
          ...(run.timing ? { timing: run.timing } : {}),
        }),
      );
    }
    return profiles;
  } finally {
    ex.destroy();
  }
}

function entryOf(plan: Plan, entry: string): EntryPlan {
  const e = plan.entries[entry];
  if (!e) {
    throw new Error(`plan "${plan.model}" has no entry "${entry}"; entries: ${Object.keys(plan.entries)}`);
  }
  return e;
}
