/**
 * Resuming a run: the checkpoint must hold exactly this plan's parameters, and the config and dims
 * must be the ones it was trained with. Anything else is refused with every difference named.
 */
import type { Plan } from "../../compiler/plan.ts";
import { type Checkpoint, CHECKPOINT_FILES, requireOptimizer } from "../checkpoint.ts";
import { CheckpointError } from "../file_errors.ts";
import { checkAgainstParams } from "../safetensors.ts";

/** Each difference between the checkpoint and `plan` as one line; empty when the run can resume. */
export function resumeMismatches(checkpoint: Checkpoint, plan: Plan): string[] {
  const problems: string[] = [];
  try {
    checkAgainstParams(checkpoint.model, plan.params, `${checkpoint.path}/${CHECKPOINT_FILES.model}`);
    const optimizerPath = `${checkpoint.path}/${CHECKPOINT_FILES.optimizer}`;
    checkAgainstParams(requireOptimizer(checkpoint), plan.params, optimizerPath, ["m.", "v."]);
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    problems.push(e.message);
  }
  const run = `${checkpoint.path}/${CHECKPOINT_FILES.run}`;
  const saved = checkpoint.run.spec;
  if (saved.name !== plan.model) {
    problems.push(
      `the model is "${plan.model}" here but "${saved.name}" (${saved.path}) in ${run}: a checkpoint of ` +
        `another spec (--init-from starts a new run from its parameters when they fit)`,
    );
  }
  for (const [key, here, saved] of differences(flatten(plan.config), flatten(checkpoint.run.config))) {
    problems.push(`config ${key} is ${here} here but ${saved} in ${run} (--set ${key}=${saved} to match)`);
  }
  for (const [key, here, saved] of differences(flatten(plan.dims), flatten(checkpoint.run.dims))) {
    const flag = key === "batch" ? `--batch ${saved}` : `--dim ${key}=${saved}`;
    problems.push(`dim ${key} is ${here} here but ${saved} in ${run} (${flag} to match)`);
  }
  return problems;
}

/** The config and dims to resume with when the caller gave none: the checkpoint's own. */
export function savedBindings(checkpoint: Checkpoint): {
  config: Record<string, unknown> | undefined;
  dims: Record<string, number>;
} {
  const c = checkpoint.run.config;
  const config = typeof c === "object" && c !== null && !Array.isArray(c) ? { ...c } : undefined;
  return { config, dims: { ...checkpoint.run.dims } };
}

/** `[key, here, saved]` for each dotted key whose JSON differs ("absent" where a side lacks it). */
function differences(
  here: ReadonlyMap<string, string>,
  saved: ReadonlyMap<string, string>,
): [string, string, string][] {
  const keys = [...new Set([...here.keys(), ...saved.keys()])].sort();
  return keys.filter((k) => here.get(k) !== saved.get(k)).map((k) => [
    k,
    here.get(k) ?? "absent",
    saved.get(k) ?? "absent",
  ]);
}

/** Nested objects as dotted keys to JSON text; arrays and scalars are compared whole. */
function flatten(value: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix || "(config)", JSON.stringify(value) ?? "undefined");
  }
  return out;
}
