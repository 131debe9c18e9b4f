/**
 * plan.json of a generated module: the compiled inference plan (WGSL and plain data) with what the
 * runtime needs to drive it (the resolved Transfusion config and the batch). Written by
 * cli/compile.ts, read by the module's runtime; no compiler code is needed to read it.
 */
import type { Plan } from "../../compiler/plan.ts";
import type { TransfusionConfig } from "../../spec/transfusion/config.ts";
import { CheckpointError } from "../file_errors.ts";

export const MODULE_FORMAT = "transfusion-module";
/** 2: `decoder`, the VAE of a model whose images are latents (a version-1 runtime would return latents). */
export const MODULE_VERSION = 2;

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
  /** Present when the model's images are a VAE's latents: what turns them into pixels and back. */
  readonly decoder?: ModuleDecoder;
}

/**
 * The VAE of a latent model, carried by the module so that `generate` returns pictures: its
 * `encode` and `decode` entries compiled at batch 1, its weights in a file next to plan.json, and
 * the per-channel scaling the latents were trained with (model = (z - mean) / std).
 */
export interface ModuleDecoder {
  /** Where the VAE was trained and its step, as the weights were taken (for messages and `info`). */
  readonly vaeRun: string;
  readonly spec: string;
  readonly step: number;
  /** The model's images [channels, size, size] and the VAE's pixels. */
  readonly latent: { readonly size: number; readonly channels: number };
  readonly pixels: { readonly size: number; readonly channels: number };
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** The safetensors file of the VAE's parameters, relative to plan.json. */
  readonly weights: string;
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
  const d = m!.decoder;
  if (d !== undefined) {
    const sizes = [d.latent?.size, d.latent?.channels, d.pixels?.size, d.pixels?.channels];
    if (!sizes.every((n) => Number.isInteger(n) && n! > 0) || typeof d.weights !== "string" || !d.plan) {
      fail("its decoder has no latent and pixel shapes, weights file or plan");
    }
    if (d.mean?.length !== d.latent.channels || d.std?.length !== d.latent.channels) {
      fail(`its decoder scales ${d.mean?.length} and ${d.std?.length} channels, not ${d.latent.channels}`);
    }
  }
  return m as ModulePlan;
}
