/**
 * The config and dims a run compiles with. Fresh runs start from the spec's defaults; resumed runs
 * from the checkpoint's values, so `--resume` alone continues the same run. Overrides given by the
 * caller go on top and are validated by the spec's schema.
 */
import { type ConfigSource, resolveConfig, unknownKeysMessage } from "../../spec/config.ts";
import type { AnyModel } from "../../spec/model.ts";
import { TrainError } from "./settings.ts";

/**
 * The resolved config. `overrides` keys may be dotted (`image.size`) to reach into nested groups.
 * When the checkpoint's config no longer fits the spec (the spec changed), the spec's defaults are
 * used instead, and the resume check then names what differs.
 */
export function resolveRunConfig(
  model: AnyModel,
  overrides: Readonly<Record<string, unknown>>,
  saved: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const where = model.site ?? model.name;
  const fromDefaults = () =>
    resolveConfig(
      model.config,
      nest(asRecord(resolveConfig(model.config, {}, where)), overrides, model.config),
      where,
    );
  if (saved) {
    try {
      return asRecord(resolveConfig(model.config, nest(saved, overrides, model.config), where));
    } catch {
      return asRecord(fromDefaults());
    }
  }
  return asRecord(fromDefaults());
}

/** Dims: the spec's, its training batch, the checkpoint's, then the caller's (later wins). */
export function resolveRunDims(
  model: AnyModel,
  given: Readonly<Record<string, number>>,
  saved: Readonly<Record<string, number>> | undefined,
): Record<string, number> {
  const batch = model.training?.batch;
  const dims = { ...model.dims, ...(batch === undefined ? {} : { batch }), ...saved, ...given };
  for (const [name, value] of Object.entries(dims)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new TrainError(`dim ${name} = ${value}: expected a positive integer`);
    }
  }
  return dims;
}

/**
 * `base` with each override applied; a dotted key replaces one field of a nested group (a copy).
 * A dotted key whose group does not exist is kept as given, so the schema names it as unknown; one
 * naming a field its group lacks is refused here (a plain nested default would take it silently).
 */
function nest(
  base: Readonly<Record<string, unknown>>,
  overrides: Readonly<Record<string, unknown>>,
  source: ConfigSource<unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(base);
  for (const [key, value] of Object.entries(overrides)) {
    const path = key.split(".");
    let group: Record<string, unknown> | undefined = out;
    for (const part of path.slice(0, -1)) {
      const next: unknown = group?.[part];
      group = isRecord(next) ? next : undefined;
    }
    const field = path.at(-1)!;
    if (!group || path.length === 1) {
      out[key] = value;
    } else if (field in group) {
      group[field] = value;
    } else {
      throw new TrainError(unknownKeysMessage(source, [key]));
    }
  }
  return out;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function asRecord(config: unknown): Record<string, unknown> {
  if (isRecord(config)) return config;
  throw new TrainError(`the spec's config resolves to ${JSON.stringify(config)}; expected an object`);
}
