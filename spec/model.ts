import { type DType, type Node, node, SpecError, userSite, withTraceSite } from "../compiler/ir/mod.ts";
import { type ConfigSource, resolveConfig } from "./config.ts";
import { withTrace } from "./context.ts";
import { materialize, type Materialized, type ParamEntry, type ParamTree } from "./params.ts";
import { Tensor } from "./tensor.ts";
import type { DataSource } from "./data.ts";

/** An input declared by dtype and dims; string dims are symbols bound at compile time ("batch"). */
export interface InputDecl<D extends DType = DType, R extends number = number> {
  readonly kind: "input";
  readonly dtype: D;
  readonly dims: readonly (number | string)[];
  readonly site: string | undefined;
  readonly __rank?: R;
}

export function input<D extends DType, const S extends readonly (number | string)[]>(
  dtype: D,
  dims: S,
): InputDecl<D, S["length"]> {
  return { kind: "input", dtype, dims, site: userSite() };
}

export type InputTree = Readonly<Record<string, InputDecl>>;
export type Inputs<I extends InputTree> = {
  readonly [K in keyof I]: I[K] extends InputDecl<infer D, infer R> ? Tensor<D, R>
    : never;
};

export type Scalar = Tensor<"f32", 0>;
/** What a loss function returns: the scalar to minimize, optionally with named scalar metrics. */
export type LossResult = Scalar | { loss: Scalar; metrics?: Record<string, Scalar> };

/**
 * An extra entry point (forward, sampling step): its own inputs and named outputs.
 *
 * `state` declares values that persist across runs (a KV cache): each appears in `x` like an input,
 * and `outputs` must return its new value under the same name with the same shape and dtype. A
 * state name is shared by every entry declaring it (one slot in the plan's "state" buffer).
 */
export interface EntryDef<C, P extends ParamTree> {
  inputs: (c: C) => InputTree;
  state?: (c: C) => InputTree;
  outputs: (p: Materialized<P>, x: Record<string, Tensor>, c: C) => Record<string, Tensor>;
}

export interface ModelDef<C, P extends ParamTree, I extends InputTree> {
  /** Shown in errors, plans and checkpoints. */
  name: string;
  config: ConfigSource<C>;
  /** Default bindings of symbolic dims (overridden at compile time). */
  dims?: Record<string, number>;
  params: (c: C) => P;
  inputs: (c: C) => I;
  loss: (p: Materialized<P>, x: Inputs<I>, c: C) => LossResult;
  entries?: Record<string, EntryDef<C, P>>;
  /** Training data for the CLI: batches of the loss entry's inputs. */
  data?: (c: C, dims: Readonly<Record<string, number>>) => DataSource;
  /** Training defaults (the CLI's flags override them). */
  training?: TrainingDefaults;
  /**
   * Numeric precision of the lowered plan, fixed or from the config (default: f32 storage).
   * `storage: "f16"` stores intermediate float activations in f16 while every kernel computes and
   * accumulates in f32 (mixed precision); parameters, gradients, optimizer state, entry inputs,
   * outputs and state stay f32. The plan then needs the WebGPU feature "shader-f16".
   */
  precision?: Precision | ((c: C) => Precision);
}

/** How a plan stores its activations; the IR and every computation stay f32 either way. */
export interface Precision {
  readonly storage: "f32" | "f16";
  /**
   * Static loss scale of the training step: the backward pass starts from `lossScale` instead of 1
   * and the parameter gradients are divided by it before clipping and AdamW, so the activation
   * gradients stored in f16 sit S times higher, out of f16's subnormal range (below 6.1e-5 it keeps
   * fewer bits; gradients of a loss averaged over thousands of positions are often 1e-5..1e-7).
   * A power of two (exact to undo). Default: 1024 with f16 storage (room for gradients up to ~64
   * before f16 overflows at 65504), 1 with f32.
   */
  readonly lossScale?: number | undefined;
}

export const DEFAULT_PRECISION: Precision = { storage: "f32" };
export const DEFAULT_F16_LOSS_SCALE = 1024;

/** The loss scale a precision asks for, its default filled in. */
export function lossScaleOf(p: Precision): number {
  return p.lossScale ?? (p.storage === "f16" ? DEFAULT_F16_LOSS_SCALE : 1);
}

/** Optimizer and schedule defaults a spec recommends; every field optional. */
export interface TrainingDefaults {
  readonly steps?: number;
  readonly batch?: number;
  readonly lr?: number;
  /** Linear warmup steps, then cosine decay to `lrFloor` at `steps`. */
  readonly warmup?: number;
  readonly lrFloor?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  readonly weightDecay?: number;
  /** Global gradient-norm clip; 0 turns it off. */
  readonly clip?: number;
  /** Decay of an exponential moving average of the parameters kept for sampling; 0 (default) none. */
  readonly ema?: number;
  /** Steps between updates of that average. */
  readonly emaEvery?: number;
}

export interface Model<C = unknown, P extends ParamTree = ParamTree, I extends InputTree = InputTree>
  extends ModelDef<C, P, I> {
  readonly kind: "model";
  /** Where the spec was declared, for messages. */
  readonly site: string | undefined;
}

/** Declares a model. A spec file's default export is one of these. */
export function model<C, P extends ParamTree, I extends InputTree>(def: ModelDef<C, P, I>): Model<C, P, I> {
  return { ...def, kind: "model", site: userSite() };
}

/** A model with its types erased, as the compiler and the CLI handle it. Every `Model` is one. */
export interface AnyModel {
  readonly kind: "model";
  readonly name: string;
  readonly site: string | undefined;
  readonly config: unknown;
  readonly dims?: Record<string, number>;
  readonly params: (c: never) => ParamTree;
  readonly inputs: (c: never) => InputTree;
  readonly loss: (p: never, x: never, c: never) => LossResult;
  readonly entries?: Record<string, {
    inputs: (c: never) => InputTree;
    state?: (c: never) => InputTree;
    outputs: (p: never, x: never, c: never) => Record<string, Tensor>;
  }>;
  readonly data?: (c: never, dims: Readonly<Record<string, number>>) => DataSource;
  readonly training?: TrainingDefaults;
  readonly precision?: Precision | ((c: never) => Precision);
}

export function isModel(x: unknown): x is AnyModel {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "model";
}

export interface TraceOptions {
  /** Config overrides, validated by the spec's schema. */
  config?: Record<string, unknown>;
  /** Bindings for symbolic dims. */
  dims?: Record<string, number>;
  /** Which entry to trace: "loss" (default) or a name in `entries`. */
  entry?: string;
}

/** A traced entry point: the graph the compiler works on. */
export interface TracedModel {
  readonly name: string;
  readonly entry: string;
  readonly config: unknown;
  readonly dims: Readonly<Record<string, number>>;
  readonly params: readonly (ParamEntry & { node: Node<"param"> })[];
  readonly inputs: readonly Node<"input">[];
  /** Named outputs; the "loss" entry has `loss` plus any metrics. State is not among them. */
  readonly outputs: Readonly<Record<string, Node>>;
  /** Persistent state: the value read (an `input` node named like the state) and the new value. */
  readonly state: readonly TracedState[];
  /** The model's precision for this config (a lowering policy: the graph above is f32). */
  readonly precision: Precision;
}

export interface TracedState {
  readonly name: string;
  readonly input: Node<"input">;
  readonly output: Node;
}

/** Runs the spec's functions with tracer tensors and returns the IR of one entry point. */
export function trace(m: AnyModel, opts: TraceOptions = {}): TracedModel {
  const config: never = resolveConfig(m.config, opts.config ?? {}, m.site ?? m.name) as never;
  const dims = { ...m.dims, ...opts.dims };
  const entry = opts.entry ?? "loss";
  return withTraceSite(m.site, () =>
    withTrace(dims, (ctx) => {
      const entries: ParamEntry[] = [];
      const p: unknown = materialize(m.params(config), entries);
      let outputs: Record<string, Node>;
      let inputTree: InputTree;
      let state: TracedState[] = [];
      if (entry === "loss") {
        inputTree = m.inputs(config);
        const x = makeInputs(inputTree, dims);
        const result = m.loss(p as never, x as never, config);
        const { loss, metrics } = result instanceof Tensor ? { loss: result, metrics: {} } : result;
        if (!(loss instanceof Tensor) || loss.rank !== 0 || loss.dtype !== "f32") {
          throw new SpecError("loss", `the loss must be an f32 scalar, got ${String(loss)}`, m.site);
        }
        outputs = { loss: loss.node };
        for (const [k, v] of Object.entries(metrics ?? {})) outputs[k] = v.node;
      } else {
        const def = m.entries?.[entry];
        if (!def) {
          const known = ["loss", ...Object.keys(m.entries ?? {})].join(", ");
          throw new SpecError(
            "trace",
            `model "${m.name}" has no entry "${entry}"; entries: ${known}`,
            m.site,
          );
        }
        inputTree = def.inputs(config);
        const stateTree: InputTree = def.state?.(config) ?? {};
        const x = makeInputs(inputTree, dims);
        const old = makeInputs(stateTree, dims);
        for (const k of Object.keys(old)) {
          if (k in x) {
            throw new SpecError("state", `entry "${entry}" declares "${k}" as an input and as state`, m.site);
          }
        }
        const returned = def.outputs(p as never, { ...x, ...old } as never, config);
        outputs = Object.fromEntries(Object.entries(returned).map(([k, v]) => [k, v.node]));
        state = Object.entries(old).map(([name, t]) => {
          const input = t.node as Node<"input">;
          return { name, input, output: takeStateOutput(entry, input, outputs, stateTree[name]!.site) };
        });
      }
      const inputs = Object.keys(inputTree).map((k) => inputNode(k, inputTree[k]!, dims));
      if (ctx.seed) inputs.push(ctx.seed);
      const params = entries.map((e) => ({
        ...e,
        node: node("param", [], { path: e.path, shape: e.decl.shape, dtype: e.decl.dtype }),
      }));
      const precision = resolvePrecision(m, config);
      return { name: m.name, entry, config, dims, params, inputs, outputs, state, precision };
    }));
}

function resolvePrecision(m: AnyModel, config: never): Precision {
  const p = typeof m.precision === "function" ? m.precision(config) : m.precision ?? DEFAULT_PRECISION;
  if (p.storage !== "f32" && p.storage !== "f16") {
    throw new SpecError(
      "precision",
      `model "${m.name}": precision.storage = ${JSON.stringify(p.storage)}; expected "f32" or "f16"`,
      m.site,
    );
  }
  const s = p.lossScale;
  if (s !== undefined && !(Number.isInteger(s) && s >= 1 && s <= 2 ** 24 && (s & (s - 1)) === 0)) {
    throw new SpecError(
      "precision",
      `model "${m.name}": precision.lossScale = ${JSON.stringify(s)}; expected a power of two from 1 to 2^24`,
      m.site,
    );
  }
  return p;
}

/** Removes state `name`'s new value from `outputs`, checking that it is there and matches the state. */
function takeStateOutput(
  entry: string,
  old: Node<"input">,
  outputs: Record<string, Node>,
  site: string | undefined,
): Node {
  const name = old.arg.name;
  const next = outputs[name];
  const want = `${old.dtype}[${old.shape.join(", ")}]`;
  if (!next) {
    throw new SpecError(
      "state",
      `entry "${entry}" declares state "${name}" (${want}) but its outputs do not return its new value ` +
        `under that name; outputs: ${Object.keys(outputs).join(", ") || "none"}`,
      site,
    );
  }
  const got = `${next.dtype}[${next.shape.join(", ")}]`;
  if (got !== want) {
    throw new SpecError(
      "state",
      `entry "${entry}" returns state "${name}" as ${got}, but it is declared ${want}`,
      site,
    );
  }
  delete outputs[name];
  return next;
}

function makeInputs(tree: InputTree, dims: Record<string, number>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, decl] of Object.entries(tree)) {
    if (k === "seed") {
      throw new SpecError("input", `the input name "seed" is reserved for the RNG`, decl.site);
    }
    out[k] = new Tensor(inputNode(k, decl, dims));
  }
  return out;
}

function inputNode(name: string, decl: InputDecl, dims: Record<string, number>): Node<"input"> {
  const shape = decl.dims.map((d) => {
    if (typeof d === "number") return d;
    const v = dims[d];
    if (v === undefined) {
      const known = Object.keys(dims).join(", ") || "none";
      throw new SpecError(
        "input",
        `input "${name}" uses dim "${d}", which is not bound (bound: ${known})`,
        decl.site,
      );
    }
    if (!Number.isInteger(v) || v <= 0) {
      throw new SpecError(
        "input",
        `dim "${d}" = ${v} must be a positive integer (input "${name}")`,
        decl.site,
      );
    }
    return v;
  });
  return node("input", [], { name, shape, dtype: decl.dtype }, decl.site);
}
