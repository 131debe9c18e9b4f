/**
 * Periodic samples during training (`--sample-every N`): a hook per kind of spec, registered by the
 * module that knows how to sample it (the Transfusion sampler registers one for its specs). The
 * training loop stays generic: it only calls the hook.
 */
import type { Plan } from "../../compiler/plan.ts";
import type { AnyModel } from "../../spec/model.ts";
import type { Executor } from "../executor.ts";

export interface SampleContext {
  /** The training executor, between two steps. Its plan holds every entry the spec declares. */
  readonly executor: Executor;
  readonly plan: Plan;
  readonly model: AnyModel;
  /** The resolved config. */
  readonly config: unknown;
  /** Optimizer steps taken. */
  readonly step: number;
  /** The run directory; write samples under it (e.g. `samples/step_000500.png`). */
  readonly dir: string;
}

/** Writes samples for the current parameters; must not run "trainStep" or change parameters. */
export type SampleHook = (ctx: SampleContext) => Promise<void>;

/** Which specs a hook serves: a model name, or a test of the model (e.g. its entries). */
export type SpecKind = string | ((model: AnyModel) => boolean);

const registry: { readonly kind: SpecKind; readonly hook: SampleHook }[] = [];

/** Registers `hook` for specs of `kind`; a later registration for the same specs wins. */
export function registerSampleHook(kind: SpecKind, hook: SampleHook): void {
  registry.unshift({ kind, hook });
}

/** The hook registered for `model`'s kind, if any. */
export function sampleHookFor(model: AnyModel): SampleHook | undefined {
  return registry.find(({ kind }) => typeof kind === "string" ? kind === model.name : kind(model))?.hook;
}
