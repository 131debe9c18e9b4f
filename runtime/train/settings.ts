/**
 * Training settings: what the loop needs beyond the spec's config and dims. Each comes from, in
 * rising priority: the built-in default, the spec's `training`, the checkpoint of a resumed run, and
 * what the caller (the CLI's flags) gives explicitly.
 */
import { DEFAULT_OPTIMIZER } from "../../compiler/compile.ts";
import type { TrainingDefaults } from "../../spec/model.ts";

/** A mistake in what the caller asked for (flags, run directory): one message, no stack trace. */
export class TrainError extends Error {
  override name = "TrainError";
}

export interface TrainSettings {
  /** Total optimizer steps of the run (the lr schedule ends here). */
  readonly steps: number;
  /** Peak learning rate. */
  readonly lr: number;
  /** Linear warmup steps, then cosine decay to `lrFloor` at `steps`. */
  readonly warmup: number;
  readonly lrFloor: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Global gradient-norm clip; 0 turns it off. */
  readonly clip: number;
  /** Seeds parameter init, the data batches and the in-graph RNG. */
  readonly seed: number;
  /** Log every this many steps; 0 picks "every 10 steps or 2 seconds, whichever comes first". */
  readonly logEvery: number;
  /** Save a checkpoint every this many steps (and always at the end); 0 saves only at the end. */
  readonly checkpointEvery: number;
  /** Call the sample hook every this many steps (and at the end); 0 never. */
  readonly sampleEvery: number;
  /**
   * Decay of the exponential moving average of the parameters kept beside the run (saved as
   * ema.safetensors, what sampling uses by default); 0 keeps none. 0.999 averages ~1000 steps.
   */
  readonly ema: number;
  /** Fold the parameters into the average every this many steps (and at each save). */
  readonly emaEvery: number;
  /**
   * Train steps submitted before the loop waits on the oldest one's loss (runtime/train/in_flight.ts);
   * 1 waits on every step. It changes no result, only how long the device waits on the host.
   */
  readonly inFlight: number;
}

export const DEFAULT_SETTINGS = {
  steps: 1000,
  lr: 3e-4,
  warmup: 0,
  beta1: DEFAULT_OPTIMIZER.beta1,
  beta2: DEFAULT_OPTIMIZER.beta2,
  eps: DEFAULT_OPTIMIZER.eps,
  weightDecay: DEFAULT_OPTIMIZER.weightDecay,
  clip: DEFAULT_OPTIMIZER.clipNorm,
  seed: 0,
  logEvery: 0,
  checkpointEvery: 500,
  sampleEvery: 0,
  ema: 0,
  emaEvery: 10,
  inFlight: 8,
} as const;

/** The floor of the cosine decay when nobody sets one: a tenth of the peak (as nanoGPT does). */
const FLOOR_FRACTION = 0.1;

type Rule = { readonly int: boolean; readonly min: number; readonly max?: number; readonly open?: boolean };
const RULES: { readonly [K in keyof TrainSettings]: Rule } = {
  steps: { int: true, min: 1 },
  lr: { int: false, min: 0 },
  warmup: { int: true, min: 0 },
  lrFloor: { int: false, min: 0 },
  beta1: { int: false, min: 0, max: 1, open: true },
  beta2: { int: false, min: 0, max: 1, open: true },
  eps: { int: false, min: 0 },
  weightDecay: { int: false, min: 0 },
  clip: { int: false, min: 0 },
  seed: { int: true, min: 0, max: 2 ** 32 - 1 },
  logEvery: { int: true, min: 0 },
  checkpointEvery: { int: true, min: 0 },
  sampleEvery: { int: true, min: 0 },
  ema: { int: false, min: 0, max: 1, open: true },
  emaEvery: { int: true, min: 1 },
  inFlight: { int: true, min: 1, max: 64 },
};

/** Merges the layers (later wins) and checks every value; `lrFloor` defaults to a tenth of `lr`. */
export function resolveSettings(
  spec: TrainingDefaults | undefined,
  saved: Partial<TrainSettings> | undefined,
  given: Partial<TrainSettings>,
): TrainSettings {
  const { batch: _batch, ...fromSpec } = spec ?? {};
  const merged: Partial<TrainSettings> = { ...DEFAULT_SETTINGS, ...fromSpec, ...saved, ...defined(given) };
  const lr = merged.lr ?? DEFAULT_SETTINGS.lr;
  const settings = { ...merged, lrFloor: merged.lrFloor ?? lr * FLOOR_FRACTION } as TrainSettings;
  for (const key of Object.keys(RULES) as (keyof TrainSettings)[]) checkSetting(key, settings[key]);
  if (settings.lrFloor > settings.lr) {
    throw new TrainError(
      `lrFloor = ${settings.lrFloor} is above lr = ${settings.lr}; expected lrFloor <= lr`,
    );
  }
  return settings;
}

/** Reads settings saved with a checkpoint, keeping only known keys with numeric values. */
export function parseSavedSettings(json: unknown, source: string): Partial<TrainSettings> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TrainError(
      `${source} should hold a JSON object of training settings, got ${JSON.stringify(json)}`,
    );
  }
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(json)) {
    if (!(key in RULES)) continue;
    if (typeof value !== "number") {
      throw new TrainError(`${source}: "${key}" should be a number, got ${JSON.stringify(value)}`);
    }
    out[key] = value;
  }
  return out as Partial<TrainSettings>;
}

function checkSetting(key: keyof TrainSettings, value: unknown): void {
  const rule = RULES[key];
  const ok = typeof value === "number" && Number.isFinite(value) && (!rule.int || Number.isInteger(value)) &&
    value >= rule.min && (rule.max === undefined || (rule.open ? value < rule.max : value <= rule.max));
  if (ok) return;
  const kind = rule.int ? "an integer" : "a finite number";
  const upper = rule.max === undefined ? "" : ` and ${rule.open ? "<" : "<="} ${rule.max}`;
  const shown = typeof value === "number" ? String(value) : JSON.stringify(value);
  throw new TrainError(`training setting ${key} = ${shown}: expected ${kind} >= ${rule.min}${upper}`);
}

/** Drops keys whose value is `undefined`, so they do not hide a lower layer's value. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The AdamW settings of the plan a run compiles (compiler's CompileOptions.optimizer). */
export function optimizerOf(settings: TrainSettings) {
  const { beta1, beta2, eps, weightDecay, clip } = settings;
  return { beta1, beta2, eps, weightDecay, clipNorm: clip };
}
