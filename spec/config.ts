import { z } from "zod";
import { SpecError } from "../compiler/ir/mod.ts";

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

/** The validated config: defaults, then `overrides` (from the CLI or a caller), checked by the schema. */
export function resolveConfig<C>(
  source: ConfigSource<C>,
  overrides: Record<string, unknown>,
  where: string,
): C {
  const schema = isSchema(source) ? source : inferSchema(source as Record<string, unknown>);
  const base = isSchema(source) ? {} : (source as Record<string, unknown>);
  const result = schema.safeParse({ ...base, ...overrides });
  if (result.success) return result.data as C;
  const lines = result.error.issues.map((issue) => {
    const key = issue.path.join(".");
    const given = key in overrides ? overrides[key] : key in base ? base[key] : undefined;
    if (issue.code === "unrecognized_keys") {
      const known = Object.keys((schema as unknown as { shape?: object }).shape ?? base).join(", ");
      return `unknown config key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}; known keys: ${known}`;
    }
    return `config "${key}" = ${JSON.stringify(given)}: ${issue.message}`;
  });
  throw new SpecError("config", `${lines.join("; ")}`, where);
}
