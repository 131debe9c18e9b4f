import { z } from "zod";
import { SpecError } from "../compiler/ir/mod.ts";
import { closeMatches, nearest } from "./suggest.ts";

/**
 * Config validation. A spec gives its hyper-parameters either as a zod object schema (with
 * defaults and ranges) or as plain default values, from which a strict schema is inferred: numbers
 * stay finite numbers, strings and booleans keep their type, and unknown keys are rejected.
 */
export type ConfigSource<C> = C | z.ZodType<C>;

function isSchema<C>(c: ConfigSource<C>): c is z.ZodType<C> {
  return typeof c === "object" && c !== null && "safeParse" in c && typeof c.safeParse === "function";
}

function inferSchema(defaults: Record<string, unknown>): z.ZodType {
  const shape: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(defaults)) {
    if (typeof v === "number") {
      shape[k] = (Number.isInteger(v) && v > 0 ? z.number().int().positive() : z.number()).default(v);
    } else if (typeof v === "string") shape[k] = z.string().default(v);
    else if (typeof v === "boolean") shape[k] = z.boolean().default(v);
    else shape[k] = z.any().default(v);
  }
  return z.object(shape).strict();
}

/**
 * The validated config: defaults, then `overrides` (from the CLI or a caller), checked by the schema.
 * `overrides` may be nested or dotted (`{ "backbone.dim": 64 }`); each message names the key, the
 * value as given and what is allowed (for an unknown key: the keys its group has).
 */
export function resolveConfig<C>(
  source: ConfigSource<C>,
  overrides: Record<string, unknown>,
  where: string,
): C {
  const schema = isSchema(source) ? source : inferSchema(source as Record<string, unknown>);
  const base = isSchema(source) ? {} : (source as Record<string, unknown>);
  const input = { ...base, ...overrides };
  const result = schema.safeParse(input);
  if (result.success) return result.data as C;
  const lines = result.error.issues.map((issue) => {
    const key = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => asGiven(input, [...issue.path.map(String), k].join(".")));
      return unknownKeysMessage(source, keys);
    }
    const given = givenAt(input, issue.path);
    const members = configKeys(source).filter((k) => k.startsWith(`${key}.`));
    if (key && members.length && !isRecord(given)) {
      // `--set backbone=3`: a group takes its keys, not a value
      return `config "${key}" = ${shown(given)}: "${key}" is a group of keys, set one of them ` +
        `(${members.join(", ")})`;
    }
    return `config "${key}" = ${shown(given)}: ${issue.message}`;
  });
  throw new SpecError("config", `${lines.join("; ")}`, where);
}

/** An unknown key as the caller wrote it: `backbon.dim` when the schema only saw its group `backbon`. */
function asGiven(input: Record<string, unknown>, key: string): string {
  return key in input ? key : Object.keys(input).find((k) => k.startsWith(`${key}.`)) ?? key;
}

/** A value for a message: JSON where it has a JSON form, else its string (`undefined`, `NaN`). */
function shown(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value === undefined ? "(not given)" : JSON.stringify(value);
}

/** The value at `path` of an input whose keys may be nested or dotted; the dotted form wins. */
function givenAt(input: Record<string, unknown>, path: readonly PropertyKey[]): unknown {
  const parts = path.map(String);
  for (let split = parts.length; split > 0; split--) {
    const head = parts.slice(0, split).join(".");
    if (!(head in input)) continue;
    let at: unknown = input[head];
    for (const part of parts.slice(split)) at = isRecord(at) ? at[part] : undefined;
    if (at !== undefined) return at;
  }
  return undefined;
}

/**
 * Every dotted key a config takes (`backbone.dim`, `image.patch`, ...): the schema's object shapes
 * walked to their leaves (through wrappers such as preprocess, optional and default, found by their
 * structure, not their kind), and where the schema is opaque, the defaults' nesting. Arrays are leaves.
 */
export function configKeys<C>(source: ConfigSource<C>): string[] {
  const base = isSchema(source) ? undefined : source;
  const walk = (shape: Record<string, unknown> | undefined, at: unknown, prefix: string): string[] =>
    Object.keys(shape ?? (isRecord(at) ? at : {})).flatMap((k) => {
      const inner = shape && objectShape(shape[k]);
      const value = isRecord(at) ? at[k] : undefined;
      return inner || isRecord(value) ? walk(inner, value, `${prefix}${k}.`) : [`${prefix}${k}`];
    });
  return walk(
    objectShape(isSchema(source) ? source : inferSchema(base as Record<string, unknown>)),
    base,
    "",
  );
}

/**
 * The refusal of unknown (dotted) keys: each named, with a "did you mean" where a key (or a group,
 * for `backbon.dim`) is close, then every key the config takes: the close ones first, then the rest
 * in the config's order.
 */
export function unknownKeysMessage<C>(source: ConfigSource<C>, unknown: readonly string[]): string {
  const keys = configKeys(source);
  const groups = [
    ...new Set(
      keys.flatMap((k) => k.split(".").slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join("."))),
    ),
  ];
  const named = unknown.map((k) => {
    const guess = nearest(k, keys) ?? nearest(k.split(".")[0]!, groups);
    const hint = guess === undefined
      ? ""
      : guess === k.split(".")[0]
      ? ` ("${guess}" has no key "${k.slice(guess.length + 1)}")`
      : groups.includes(guess)
      ? ` (did you mean a key of "${guess}"?)`
      : ` (did you mean "${guess}"?)`;
    return `"${k}"${hint}`;
  });
  const first = unknown[0] ?? "";
  const closeGroups = closeMatches(first.split(".")[0]!, groups);
  const close = [
    ...closeMatches(first, keys),
    ...keys.filter((k) => closeGroups.some((g) => k.startsWith(`${g}.`))),
  ];
  const ordered = [...new Set([...close, ...keys])];
  const listed = ordered.length ? ordered.join(", ") : "(none)";
  return `unknown config key${unknown.length > 1 ? "s" : ""} ${named.join(", ")}; known keys${
    close.length ? ", nearest first" : ""
  }: ${listed}`;
}

/** The shape of the object schema `s` is or wraps (zod 4 keeps wrapped schemas in `_zod.def`). */
function objectShape(s: unknown, depth = 0): Record<string, unknown> | undefined {
  if (!isRecord(s) || depth > 8) return undefined;
  if (isRecord(s.shape)) return s.shape;
  const def = isRecord(s._zod) && isRecord(s._zod.def) ? s._zod.def : undefined;
  for (const inner of ["out", "innerType", "schema", "in"]) {
    const found = def && objectShape(def[inner], depth + 1);
    if (found) return found;
  }
  return undefined;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
