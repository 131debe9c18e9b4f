/**
 * `transfusion()`'s options: config keys (deep-partial, validated by the config schema) plus the
 * model-level keys. Defaults that follow other keys (MLP width, timestep width, seq) are filled in
 * before validation, so a spec states only what differs.
 */
import { z } from "zod";
import { SpecError, userSite } from "../../compiler/ir/mod.ts";
import type { DataSource } from "../data.ts";
import type { TrainingDefaults } from "../model.ts";
import {
  configSchema,
  type DeepPartial,
  DEFAULTS,
  real,
  rowGeometry,
  type TransfusionConfig,
  valueAt,
} from "./config.ts";
import type { TransfusionPieces } from "./pieces.ts";

export interface TransfusionOptions extends DeepPartial<TransfusionConfig> {
  /** Shown in plans, checkpoints and errors; default "transfusion". */
  readonly name?: string;
  /** The default binding of the "batch" dim; default `training.batch`, else 32. */
  readonly batch?: number;
  readonly training?: TrainingDefaults;
  readonly data?: (c: TransfusionConfig, dims: Readonly<Record<string, number>>) => DataSource;
  /** The user's own modules for the model's pieces (block, codec, embed, LM head, losses); pieces.ts. */
  readonly pieces?: TransfusionPieces;
}

const MODEL_KEYS = ["name", "batch", "training", "data", "pieces"] as const;

/** A number (an integer with `integer`) >= min, or < below when given. */
const atLeast = (min: number, integer: boolean, below?: number) => {
  const error = `must be ${integer ? "an integer" : "a number"} >= ${min}${
    below === undefined ? "" : ` and < ${below}`
  }`;
  const n = z.number({ error }).min(min, { error });
  const checked = integer ? n.int({ error }) : n;
  return below === undefined ? checked : checked.lt(below, { error });
};

const trainingSchema = z.strictObject({
  steps: atLeast(1, true),
  batch: atLeast(1, true),
  lr: real(0, 10),
  warmup: atLeast(0, true),
  lrFloor: real(0, 10),
  beta1: atLeast(0, false, 1),
  beta2: atLeast(0, false, 1),
  eps: real(0, 1, "("),
  weightDecay: real(0, 10),
  clip: atLeast(0, false),
}).partial();

/**
 * The validated config of `options` (every key filled in) and the schema a model declares as its
 * config (defaults = that config), for specs that build their own model from the parts.
 */
export function transfusionConfig(options: TransfusionOptions = {}): {
  config: TransfusionConfig;
  schema: z.ZodType<TransfusionConfig>;
} {
  return resolveOptions(options, userSite());
}

/** Validates the options; the config it returns has every key. Throws a SpecError at `site`. */
export function resolveOptions(options: TransfusionOptions, site: string | undefined): {
  config: TransfusionConfig;
  schema: z.ZodType<TransfusionConfig>;
} {
  const given = Object.fromEntries(
    Object.entries(options).filter(([k]) => !(MODEL_KEYS as readonly string[]).includes(k)),
  );
  const defaults = derivedDefaults(options);
  const parsed = configSchema(defaults).safeParse(given);
  if (!parsed.success) throw optionsError(parsed.error.issues, given, defaults, site);
  if (options.training) {
    const training = trainingSchema.safeParse(options.training);
    if (!training.success) {
      const issues = training.error.issues.map((i) => ({ ...i, path: ["training", ...i.path] }));
      throw optionsError(issues, { training: options.training }, {}, site);
    }
  }
  return { config: parsed.data, schema: configSchema(parsed.data) };
}

/** DEFAULTS, with hidden = 4 * dim, timestepDim = dim and seq = the shortest full row, from the options. */
function derivedDefaults(options: TransfusionOptions): TransfusionConfig {
  const dim = options.backbone?.dim ?? DEFAULTS.backbone.dim;
  const num = (v: unknown, fallback: number) => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
  const backbone = { ...DEFAULTS.backbone, hidden: num(4 * dim, DEFAULTS.backbone.hidden) };
  // A row template sets the image slots to its images (options.image may still say otherwise).
  const row = options.row as TransfusionConfig["row"];
  const slots = Array.isArray(row?.spans) ? row.spans.filter((s) => s?.kind === "image").length : 0;
  const image = {
    ...DEFAULTS.image,
    timestepDim: num(dim, DEFAULTS.image.timestepDim),
    ...(slots > 0 ? { imagesPerRow: slots } : {}),
  };
  const geometry = rowGeometry({
    text: { ...DEFAULTS.text, ...stripUndefined(options.text) },
    image: { ...image, ...stripUndefined(options.image) },
    ...(Array.isArray(row?.spans) ? { row } : {}),
  });
  return { ...DEFAULTS, backbone, image, seq: num(geometry.minSeq, 1) };
}

function stripUndefined<T extends object>(x: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(x ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A value as the user wrote it: JSON, except NaN and the infinities (JSON would print null). */
const show = (v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : JSON.stringify(v));

function optionsError(
  issues: readonly {
    path: readonly PropertyKey[];
    message: string;
    code: string;
    keys?: readonly string[];
  }[],
  given: unknown,
  defaults: unknown,
  site: string | undefined,
): SpecError {
  const lines = issues.map((issue) => {
    const key = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      const where = key ? `in "${key}"` : "at the top level";
      return `unknown option(s) ${(issue.keys ?? []).map((k) => `"${k}"`).join(", ")} ${where}`;
    }
    const value = valueAt(given, issue.path);
    const shown = value === undefined ? `${show(valueAt(defaults, issue.path))} (default)` : show(value);
    return `option "${key}" = ${shown}: ${issue.message}`;
  });
  return new SpecError("transfusion", lines.join("; "), site);
}
