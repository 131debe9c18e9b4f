/**
 * plan.json of a generated module: the compiled inference plan (WGSL and plain data) with what the
 * runtime needs to drive it (the resolved Transfusion config and the batch). Written by
 * cli/compile.ts, read by the module's runtime; no compiler code is needed to read it.
 */
import type { Plan } from "../../compiler/plan.ts";
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { CheckpointError } from "../file_errors.ts";

export const MODULE_FORMAT = "transfusion-module";
export const MODULE_VERSION = 1;

export interface ModulePlan {
  readonly format: typeof MODULE_FORMAT;
  readonly version: typeof MODULE_VERSION;
  /** The spec file it was compiled from (for messages). */
  readonly spec: string;
  /** Rows of every entry call. */
  readonly batch: number;
  /** The resolved config, `seq` as compiled. */
  readonly config: TransfusionConfig;
  readonly plan: Plan;
}

/** Parses plan.json text; `source` names the file in errors. */
export function parseModulePlan(text: string, source: string): ModulePlan {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${source}: ${problem}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  const m = json as Partial<ModulePlan> | null;
  if (typeof m !== "object" || m === null || m.format !== MODULE_FORMAT) {
    fail(`not a generated module plan (no "format": "${MODULE_FORMAT}")`);
  }
  if (m!.version !== MODULE_VERSION) {
    fail(`plan version ${m!.version}; this runtime reads version ${MODULE_VERSION} (compile again)`);
  }
  if (!Number.isInteger(m!.batch) || m!.batch! < 1) fail(`batch ${m!.batch} must be a positive integer`);
  const plan = m!.plan;
  if (typeof plan !== "object" || plan === null || !Array.isArray(plan.params) || !plan.entries) {
    fail("has no compiled plan (params, entries)");
  }
  const config = m!.config;
  if (typeof config?.image?.size !== "number" || typeof config.text?.vocab !== "number") {
    fail("has no Transfusion config (image.size, text.vocab)");
  }
  return m as ModulePlan;
}
