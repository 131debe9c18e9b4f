/**
 * Flag parsing shared by the sample, caption, eval and demo commands: a malformed command line or a
 * bad value is a UsageError that quotes the flag, the value and what was expected.
 */
import { DataFileError } from "../../data/data_files.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../load_spec.ts";
import { ImageError } from "../file_errors.ts";
import { TrainError } from "../train/settings.ts";
import { SAMPLER_METHODS, type SamplerMethod } from "./sampler.ts";
import { SamplingError } from "./prediction.ts";
import { WEIGHTS, type Weights } from "./run.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `parseArgs` over `args` with positionals; parse errors become usage errors ending in `usage`. */
export function parseFlags<O extends Options>(args: readonly string[], options: O, usage: string) {
  try {
    return parseArgs({ args: [...args], allowPositionals: true, strict: true, options });
  } catch (e) {
    if (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(`${e.message.split("\n")[0]}\n${usage}`);
    }
    throw e;
  }
}

/** An integer flag in [min, max]; `undefined` when the flag was not given. */
export function intFlag(name: string, raw: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER) {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new UsageError(`--${name} must be an integer ${range}, got "${raw}"`);
  }
  return n;
}

/** A finite number flag >= min; `undefined` when the flag was not given. */
export function numberFlag(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < min) {
    throw new UsageError(`--${name} must be a number >= ${min}, got "${raw}"`);
  }
  return n;
}

/** `--weights ema|raw`; undefined lets loadRun pick (the moving average when the run kept one). */
export function weightsFlag(raw: string | undefined): Weights | undefined {
  return oneOfFlag("weights", raw, WEIGHTS);
}

export function samplerFlag(raw: string | undefined): SamplerMethod | undefined {
  return oneOfFlag("sampler", raw, SAMPLER_METHODS);
}

/** A flag whose value must be one of `values`; `undefined` when the flag was not given. */
function oneOfFlag<T extends string>(
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T | undefined {
  if (raw === undefined) return undefined;
  const value = values.find((v) => v === raw);
  if (!value) throw new UsageError(`--${name} must be one of ${values.join(", ")}, got "${raw}"`);
  return value;
}

/**
 * Runs a command body, turning the errors a person caused (a bad image file, a refused training
 * setting, a value the sampler rejects) into usage errors: one line, exit 1, no stack trace.
 */
export async function asUsageErrors<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (
      e instanceof ImageError || e instanceof TrainError || e instanceof SamplingError ||
      e instanceof DataFileError
    ) {
      throw new UsageError(e.message);
    }
    throw e;
  }
}
