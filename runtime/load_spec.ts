/**
 * Spec loading and the usage error: shared by the CLI and runtime/generate, so they live below cli/
 * (runtime/ never imports cli/; tests/import_layers_test.ts checks it).
 */
import { type AnyModel, isModel } from "../spec/mod.ts";

/** A CLI-facing error: printed as one message, exit code 1, no stack trace. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Imports a spec file and returns its default-exported model, or says clearly what is wrong. */
export async function loadSpec(path: string): Promise<AnyModel> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch {
    throw new UsageError(`spec file not found: ${path}`);
  }
  if (!stat.isFile) throw new UsageError(`spec path is not a file: ${path}`);
  const url = new URL(path, `file://${Deno.cwd()}/`).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new UsageError(`could not load spec ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const m = mod.default;
  if (!isModel(m)) {
    const found = Object.keys(mod).length
      ? `it exports ${Object.keys(mod).join(", ")}`
      : "it exports nothing";
    throw new UsageError(
      `spec ${path} has no default-exported model (model({...}) from spec/mod.ts); ${found}`,
    );
  }
  return m;
}

/** `key=value` pairs from `--set` flags, values parsed as JSON when they parse (numbers, booleans). */
export function parseOverrides(pairs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set expects key=value, got "${pair}"`);
    const [key, raw] = [pair.slice(0, eq), pair.slice(eq + 1)];
    try {
      out[key] = JSON.parse(raw);
    } catch {
      out[key] = raw;
    }
  }
  return out;
}
