/**
 * The Transfusion hyper-parameters: one zod schema, built with the defaults it should fill in, so the
 * options given to `transfusion()` become the defaults that CLI overrides (`--set backbone.dim=64`)
 * are validated against. Every message names the key, the value seen and what is allowed.
 */
import { z } from "zod";
import { checkTemplate, type RowTemplate, templateImages, templateLength } from "./rows.ts";
import { BpeMergeError } from "../../runtime/bpe.ts";
import { type TokenizerConfig, tokenizerFromConfig, vocabMismatch } from "../../runtime/tokenizer.ts";

export interface BackboneConfig {
  readonly dim: number;
  readonly depth: number;
  readonly heads: number;
  readonly mlp: "swiglu" | "gelu";
  /** Width of the MLP's hidden layer. */
  readonly hidden: number;
  readonly norm: "rmsnorm" | "layernorm";
  readonly normEps: number;
  /** Std of every weight matrix at init (biases and norm gains start at 0 and 1). */
  readonly initStd: number;
  readonly ropeBase: number;
}

export interface TextConfig {
  /**
   * Byte tokenizer (no `tokenizer`): 260: bytes + BOS, EOS, BOI, EOI (captions padded with EOS, as T1);
   * 261: with PAD. With a `tokenizer`: its vocabulary size (a BPE's: 261 + its tokens).
   */
  readonly vocab: number;
  readonly captionLength: number;
  /**
   * The tokenizer (runtime/tokenizer.ts), recorded with the config in run.json so sampling rebuilds it.
   * Absent (the default) means the byte tokenizer that `vocab` implies; the key then stays out of the
   * config, so older configs, plans and checkpoints stay what they were.
   */
  readonly tokenizer?: TokenizerConfig | undefined;
}

export interface ImageConfig {
  /** Side of the square image after padding (the model never sees the unpadded size). */
  readonly size: number;
  readonly channels: number;
  /** Side of a square patch; P = (size / patch)^2 patches per image. */
  readonly patch: number;
  /** N, the image slots of a row. */
  readonly imagesPerRow: number;
  /**
   * "linear": one linear layer each way; "unet": the paper's conv down/up blocks over the image with
   * skips (unet.ts); "mlp": conv-free per-patch residual MLP stacks with skips (encoder.ts).
   */
  readonly encoder: "linear" | "unet" | "mlp";
  /** Hidden widths of the "unet" / "mlp" levels, outermost first. */
  readonly unetWidths: readonly number[];
  /** "rope2d": rotary (row, col) for patches, pos for text; "learned": a [P, dim] table added to patches. */
  readonly positions: "rope2d" | "learned";
  /** "add": MLP(sinusoidal(t)) added to every patch vector (the paper); "adanorm": scale/shift of a LayerNorm. */
  readonly timestep: "add" | "adanorm";
  /** Width of the sinusoidal timestep features. */
  readonly timestepDim: number;
}

export interface DiffusionConfig {
  /** DDPM with a cosine or linear beta schedule, or flow matching (x_t = (1 - t) x0 + t eps, t in [0, 1]). */
  readonly schedule: "cosine" | "linear" | "flow";
  /** DDPM training timesteps; flow matching scales t by T for the timestep embedding. */
  readonly T: number;
  /** What the model predicts: DDPM "eps" | "v" | "x0"; flow "velocity" (eps - x0). */
  readonly target: "eps" | "v" | "x0" | "velocity";
  /** Timesteps drawn for image-first (captioning) rows stay below this (flow: below noiseLimit / T). */
  readonly noiseLimit: number;
  /** Fraction of rows whose caption the data pipeline drops (classifier-free guidance). */
  readonly condDropout: number;
}

export interface LossConfig {
  /** L = textWeight * L_LM + lambda * L_diffusion: the weight of the image (diffusion) loss. */
  readonly lambda: number;
  /** The weight of the text (LM) loss; absent means 1 (the key appears only when given). */
  readonly textWeight?: number | undefined;
  /**
   * "input": the loss entry takes `image_weight` f32 [B, N] >= 0, each image's weight in L_diffusion
   * (an image of weight 0 gives no gradient; data sources fill it, see `withImageWeights`). Absent
   * or "none": every image weighs 1.
   */
  readonly imageWeights?: "none" | "input" | undefined;
  /** MSE averaged over each image's values, then over the images present. */
  readonly averaging: "per-image";
  /** Whether the position before BOI is trained to predict BOI (T1 says no; text-to-image sampling needs it). */
  readonly boiTarget: boolean;
}

/** Activation storage (ModelDef.precision): "f16" stores intermediates in f16, computing in f32. */
export interface PrecisionConfig {
  readonly storage: "f32" | "f16";
  /** Static loss scale, a power of two (spec/model.ts Precision); absent: 1024 for f16, 1 for f32. */
  readonly lossScale?: number | undefined;
}

export interface TransfusionConfig {
  readonly backbone: BackboneConfig;
  readonly text: TextConfig;
  readonly image: ImageConfig;
  readonly diffusion: DiffusionConfig;
  readonly loss: LossConfig;
  /**
   * Absent means f32 storage: the key appears only when given (`--set precision.storage=f16`), so
   * the configs, plans and checkpoints of f32 runs stay what they were before the key existed.
   */
  readonly precision?: PrecisionConfig | undefined;
  /**
   * The spec's row template (rows.ts: `row(text("caption", 16), image(), ...)`): how its training
   * rows and the rows `generate` follows are laid out. Absent: caption-first rows (the key appears
   * only when given, so configs, plans and checkpoints without it are what they were).
   */
  readonly row?: RowTemplate | undefined;
  /**
   * Positions per row: at least 1 + captionLength + N * (P + 2) (BOS, caption, BOI patches EOI per
   * image), or the row template's length when there is one.
   */
  readonly seq: number;
}

/** Options: every key optional, except inside a value tagged by `kind` (a tokenizer config is whole). */
export type DeepPartial<T> = T extends readonly unknown[] ? T
  : T extends { readonly kind: string } ? T
  : T extends object ? { readonly [K in keyof T]?: DeepPartial<T[K]> }
  : T;

/** Library defaults: the T1 benchmark's backbone and diffusion, with a PAD token. */
export const DEFAULTS: Omit<TransfusionConfig, "seq"> = {
  backbone: {
    dim: 128,
    depth: 4,
    heads: 4,
    mlp: "swiglu",
    hidden: 512,
    norm: "rmsnorm",
    normEps: 1e-5,
    initStd: 0.02,
    ropeBase: 10000,
  },
  text: { vocab: 261, captionLength: 24 },
  image: {
    size: 32,
    channels: 1,
    patch: 4,
    imagesPerRow: 1,
    encoder: "linear",
    unetWidths: [64, 128],
    positions: "rope2d",
    timestep: "add",
    timestepDim: 128,
  },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5, averaging: "per-image", boiTarget: true },
};

/** Patches per image and the shortest row that holds BOS, the caption and every image. */
export function rowGeometry(
  c: Pick<TransfusionConfig, "text" | "image" | "row">,
): { grid: number; P: number; minSeq: number } {
  const grid = c.image.size / c.image.patch;
  const P = grid * grid;
  if (c.row) return { grid, P, minSeq: templateLength(c.row, P) };
  return { grid, P, minSeq: 1 + c.text.captionLength + c.image.imagesPerRow * (P + 2) };
}

/** A row template as config: plain data, checked by rows.ts `checkTemplate` (names, lengths). */
const rowSchema = () => {
  const name = z.string({ error: "must be a span name" });
  const span = z.discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("text"), name, length: int(1, 65536) }),
    z.strictObject({
      kind: z.literal("image"),
      name,
      limitNoise: z.boolean({ error: "must be true or false" }),
    }),
  ], { error: 'each span must be text(name, length) or image(name): kind "text" or "image"' });
  return z.strictObject({ spans: z.array(span).min(1, { error: "must hold at least one span" }) });
};

/** An integer in [min, max], the message saying so (also used by the spec's `training` options). */
export const int = (min: number, max: number) => {
  const error = `must be an integer in [${min}, ${max}]`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
/** Optional, no default: a config that leaves it out keeps its old form (and its checkpoints resume). */
const lossScale = () => {
  const error = "must be a power of two in [1, 16777216]";
  return int(1, 2 ** 24).refine((s) => (s & (s - 1)) === 0, { error }).optional();
};
/** A number in [min, max] (or (min, max] with open "("), the message saying so. */
export const real = (min: number, max: number, open: "(" | "[" = "[") => {
  const error = `must be a number in ${open}${min}, ${max}]`;
  const base = z.number({ error }).max(max, { error });
  return open === "(" ? base.gt(min, { error }) : base.min(min, { error });
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.map((v) => `"${v}"`).join(", ")}` });

/** `schema` defaulting to `value` where the base config has one, else optional. */
const optionalOr = <S extends z.ZodType>(schema: S, value: z.output<S> | undefined) =>
  value === undefined ? schema.optional() : schema.default(value as never);

/** The schema of a full config whose every key defaults to `d`'s value. */
export function configSchema(d: TransfusionConfig): z.ZodType<TransfusionConfig> {
  const group = <S extends z.ZodRawShape>(shape: S) => z.strictObject(shape).prefault({} as never);
  const b = d.backbone, t = d.text, i = d.image, f = d.diffusion, l = d.loss, p = d.precision;
  const full = z.strictObject({
    backbone: group({
      dim: int(4, 65536).default(b.dim),
      depth: int(1, 1024).default(b.depth),
      heads: int(1, 1024).default(b.heads),
      mlp: oneOf(["swiglu", "gelu"]).default(b.mlp),
      hidden: int(1, 1 << 20).default(b.hidden),
      norm: oneOf(["rmsnorm", "layernorm"]).default(b.norm),
      normEps: real(0, 1, "(").default(b.normEps),
      initStd: real(0, 10, "(").default(b.initStd),
      ropeBase: real(1, 1e12, "(").default(b.ropeBase),
    }),
    text: z.strictObject({
      vocab: int(1, 2 ** 21).default(t.vocab),
      captionLength: int(1, 65536).default(t.captionLength),
      tokenizer: t.tokenizer ? tokenizerConfig().default(t.tokenizer) : tokenizerConfig().optional(),
    }).superRefine((text, ctx) => {
      if (ctx.value.tokenizer !== undefined && !tokenizerBuilds(text.tokenizer)) return; // reported at its key
      const problem = vocabMismatch(text);
      if (problem) ctx.addIssue({ code: "custom", path: ["vocab"], message: problem });
    }).prefault({} as never),
    image: group({
      size: int(1, 4096).default(i.size),
      channels: int(1, 64).default(i.channels),
      patch: int(1, 4096).default(i.patch),
      imagesPerRow: int(1, 64).default(i.imagesPerRow),
      encoder: oneOf(["linear", "unet", "mlp"]).default(i.encoder),
      unetWidths: z.array(int(1, 65536), { error: "must be a list of widths" })
        .min(1, { error: "must list at least one width" }).default([...i.unetWidths]),
      positions: oneOf(["rope2d", "learned"]).default(i.positions),
      timestep: oneOf(["add", "adanorm"]).default(i.timestep),
      timestepDim: int(2, 65536).default(i.timestepDim),
    }),
    diffusion: group({
      schedule: oneOf(["cosine", "linear", "flow"]).default(f.schedule),
      T: int(1, 1_000_000).default(f.T),
      target: oneOf(["eps", "v", "x0", "velocity"]).default(f.target),
      noiseLimit: int(1, 1_000_000).default(f.noiseLimit),
      condDropout: real(0, 1).default(f.condDropout),
    }),
    loss: group({
      lambda: real(0, 1e6).default(l.lambda),
      averaging: oneOf(["per-image"]).default(l.averaging),
      boiTarget: z.boolean({ error: "must be true or false" }).default(l.boiTarget),
      // Optional without a default, so configs (and plans, checkpoints) that leave them out keep their form.
      textWeight: optionalOr(real(0, 1e6), l.textWeight),
      imageWeights: optionalOr(oneOf(["none", "input"]), l.imageWeights),
    }),
    precision: p
      ? group({ storage: oneOf(["f32", "f16"]).default(p.storage), lossScale: lossScale() })
      : z.strictObject({ storage: oneOf(["f32", "f16"]).default("f32"), lossScale: lossScale() }).optional(),
    row: d.row ? rowSchema().default(d.row as never) : rowSchema().optional(),
    seq: int(1, 1 << 20).default(d.seq),
  }).superRefine(crossChecks);
  return z.preprocess(expandDotted, full) as unknown as z.ZodType<TransfusionConfig>;
}

/** `text.tokenizer`: its shape, then whether it builds (a bad merge's issue sits on that merge). */
const tokenizerConfig = () => {
  const flag = z.boolean({ error: "must be true or false" });
  const shape = z.discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("byte"), pad: flag }),
    z.strictObject({
      kind: z.literal("bpe"),
      split: oneOf(["gpt2", "none"]),
      addPrefixSpace: flag,
      merges: z.array(z.tuple([int(0, 2 ** 21), int(0, 2 ** 21)]), {
        error: "must be a list of [left, right] ids",
      }),
    }),
  ], { error: `must be { kind: "byte", pad } or { kind: "bpe", split, addPrefixSpace, merges }` });
  return shape.superRefine((config, ctx) => {
    try {
      tokenizerFromConfig(config, "text.tokenizer");
    } catch (e) {
      if (!(e instanceof BpeMergeError)) throw e;
      ctx.addIssue({ code: "custom", path: ["merges", e.merge], message: e.why });
    }
  }) as unknown as z.ZodType<TokenizerConfig>;
};

function tokenizerBuilds(config: TokenizerConfig | undefined): boolean {
  try {
    tokenizerFromConfig(config!, "text.tokenizer");
    return true;
  } catch {
    return false;
  }
}

/** Rules between keys; each issue sits on the key to change. */
function crossChecks(c: TransfusionConfig, ctx: z.RefinementCtx) {
  const issue = (path: string[], message: string) => ctx.addIssue({ code: "custom", path, message });
  const { dim, heads } = c.backbone;
  if (dim % heads !== 0) issue(["backbone", "heads"], `must divide backbone.dim = ${dim}`);
  const headDim = dim / heads;
  const rotary = c.image.positions === "rope2d" ? 4 : 2;
  if (Number.isInteger(headDim) && headDim % rotary !== 0) {
    issue(
      ["backbone", "heads"],
      `gives a head dim of ${headDim}; ${c.image.positions} needs a multiple of ${rotary}`,
    );
  }
  if (c.image.size % c.image.patch !== 0) {
    issue(["image", "patch"], `must divide image.size = ${c.image.size}`);
  }
  const flow = c.diffusion.schedule === "flow";
  if (flow !== (c.diffusion.target === "velocity")) {
    issue(
      ["diffusion", "target"],
      flow ? `must be "velocity" with schedule "flow"` : `must be "eps", "v" or "x0" with a DDPM schedule`,
    );
  }
  if (c.loss.lambda === 0 && c.loss.textWeight === 0) {
    issue(["loss", "textWeight"], "is 0 and loss.lambda is 0 too: the loss would be 0, nothing would train");
  }
  if (c.diffusion.noiseLimit > c.diffusion.T) {
    issue(["diffusion", "noiseLimit"], `must be <= diffusion.T = ${c.diffusion.T}`);
  }
  if (c.row) {
    try {
      checkTemplate(c.row, "row");
    } catch (e) {
      issue(["row"], (e as Error).message.replace(/^row: /, ""));
    }
    const images = templateImages(c.row).length;
    if (images > c.image.imagesPerRow) {
      issue(["image", "imagesPerRow"], `must be >= the ${images} images of the row template`);
    }
  }
  if (c.image.size % c.image.patch === 0 && c.row) {
    const { minSeq } = rowGeometry(c);
    if (c.seq < minSeq) issue(["seq"], `must be >= the row template's ${minSeq} positions`);
  } else if (c.image.size % c.image.patch === 0) {
    const { minSeq, P } = rowGeometry(c);
    if (c.seq < minSeq) {
      issue(
        ["seq"],
        `must be >= 1 + captionLength ${c.text.captionLength} + ${c.image.imagesPerRow} * (${P} patches + 2) = ${minSeq}`,
      );
    }
  }
}

/** `{ "backbone.dim": 64 }` (CLI overrides) -> `{ backbone: { dim: 64 } }`, merged with nested keys. */
export function expandDotted(input: unknown): unknown {
  if (!isRecord(input)) return input;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    const parts = key.split(".");
    let at = out;
    for (const part of parts.slice(0, -1)) {
      const next = at[part];
      at = at[part] = isRecord(next) ? { ...next } : {};
    }
    const last = parts[parts.length - 1]!;
    const prev = at[last];
    at[last] = isRecord(prev) && isRecord(value) ? { ...prev, ...(expandDotted(value) as object) } : value;
  }
  return out;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** The value at a dotted key of (possibly dotted) options, for messages. */
export function valueAt(options: unknown, path: readonly PropertyKey[]): unknown {
  let at: unknown = expandDotted(options);
  for (const k of path) at = isRecord(at) ? at[String(k)] : Array.isArray(at) ? at[Number(k)] : undefined;
  return at;
}
