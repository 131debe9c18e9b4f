import { type AnyModel, lossScaleOf, trace, type TracedModel } from "../spec/mod.ts";
import { grad, scaledGrad } from "./autodiff.ts";
import { type Node, size, toposort } from "./ir/mod.ts";
import { verify } from "./verify.ts";
import { simplify } from "./passes/simplify.ts";
import { type Location, lowerEntry } from "./lower/lower.ts";
import { arenaName, halfArenaName } from "./lower/memory.ts";
import type { BufferSpec, EntryPlan, OptimizerSpec, ParamLayout, Plan, Step, TensorSlot } from "./plan.ts";
import type { Kernel } from "../kernels/kernel.ts";
import { defaultVariant, type MatmulShape, type MatmulVariant } from "../kernels/matmul.ts";
import { cachedVariant } from "../kernels/autotune.ts";
import { type AttentionShape, defaultAttentionVariant } from "../kernels/flash_attention.ts";
import { AVERAGE_BUFFER, AVERAGE_SCALAR, movingAverageKernel } from "../kernels/moving_average.ts";
import {
  adamwKernel,
  gradNormKernels,
  gradNormScratchWords,
  SCALAR_COUNT,
  SCALARS,
} from "../kernels/optimizer.ts";

export interface CompileOptions {
  /** Config overrides, validated by the spec's schema. */
  config?: Record<string, unknown>;
  /** Bindings of symbolic dims ("batch", "seq"). */
  dims?: Record<string, number>;
  /** Which entry points to build; default: trainStep and forward. */
  entries?: readonly string[];
  optimizer?: Partial<Omit<OptimizerSpec, "kind">>;
  /** Kernel variants are picked for this class of adapter (see runtime describeAdapter). */
  adapterClass?: "cpu" | "gpu";
  /** A tuned matmul choice per shape; falls back to the tuning cache, then to the class default. */
  matmulVariant?: (shape: MatmulShape) => MatmulVariant | undefined;
  /** The adapter's cache key (runtime describeAdapter): tuned choices (`deno task tune`) are used. */
  adapterKey?: string;
  /** Run the IR verifier after each stage (on in tests). */
  verify?: boolean;
  /** Fusion and matmul epilogues (default true); false gives the first, one-kernel-per-op lowering. */
  fuse?: boolean;
  /** The largest storage binding the target allows; activations spill into more arenas past it. */
  maxBindingBytes?: number;
  /**
   * Keep a moving average of the parameters on the device: buffer `ema` and entry `emaUpdate` (one
   * kernel, `ema = keep * ema + (1 - keep) * params`, keep in scalar `emaKeep`). Training asks for it
   * with `--ema`; without it the plan is exactly as before.
   */
  average?: boolean;
}

/** What a plan that stores activations in f16 needs of the device. */
export const F16_FEATURES: readonly string[] = ["shader-f16"];

/** WebGPU's default maxStorageBufferBindingSize: plans that respect it run on every adapter. */
export const DEFAULT_BINDING_BYTES = 134217728;

export const DEFAULT_OPTIMIZER: OptimizerSpec = {
  kind: "adamw",
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  clipNorm: 1,
};

/**
 * The compiler driver: trace -> differentiate -> verify -> lower each entry point -> plan.
 *   trainStep: forward, backward into `grads`, global-norm clip, fused AdamW
 *   forward:   the loss and metrics only (evaluation)
 *   <name>:    any extra entry the spec declares
 */
export function compile(model: AnyModel, opts: CompileOptions = {}): Plan {
  const traced = trace(model, { config: opts.config ?? {}, dims: opts.dims ?? {} });
  const params = layoutParams(traced);
  const count = paramCount(params);
  const leaves = new Map<number, Location>(
    traced.params.map((p, i) => [p.node.id, at("params", params[i]!)]),
  );
  const adapterClass = opts.adapterClass ?? "cpu";
  const lowerOpts = {
    matmulVariant: (s: MatmulShape) =>
      opts.matmulVariant?.(s) ?? (opts.adapterKey ? cachedVariant(opts.adapterKey, s) : undefined) ??
        defaultVariant(adapterClass, s),
    attentionVariant: (s: AttentionShape) => defaultAttentionVariant(adapterClass, s),
    adapterClass,
    fuse: opts.fuse ?? true,
    arenaWords: Math.floor((opts.maxBindingBytes ?? DEFAULT_BINDING_BYTES) / 4),
    storage: traced.precision.storage,
  };
  // Simplify the named outputs (and gradients), keeping their names: trace -> grad -> simplify -> lower.
  const prepare = (named: readonly { name: string; node: Node }[], extra: readonly Node[]) => {
    const all = simplify([...named.map((o) => o.node), ...extra]);
    check(all);
    return {
      outputs: named.map((o, i) => ({ name: o.name, node: all[i]! })),
      extra: all.slice(named.length),
    };
  };
  const check = (roots: readonly Node[]) => opts.verify && verify(roots);
  const builder = new PlanBuilder();
  const named = Object.entries(traced.outputs).map(([name, node]) => ({ name, node }));
  const wanted = opts.entries ?? ["trainStep", "forward"];

  if (wanted.includes("trainStep")) {
    // Frozen constants get no gradient: their slice of `grads` stays zero, so AdamW leaves them be.
    const trained = traced.params.map((p, i) => ({ node: p.node, layout: params[i]! })).filter((p) =>
      !p.layout.frozen
    );
    // A loss-scaled backward pass (f16 plans) leaves lossScale * dL/dp in `grads`; the grad-norm
    // kernel unscales the norm and folds 1 / lossScale into the factor AdamW applies, so the
    // unscaling costs no pass of its own.
    const lossScale = lossScaleOf(traced.precision);
    const raw = grad(traced.outputs.loss!, trained.map((p) => p.node), lossScale);
    check([...Object.values(traced.outputs), ...raw]);
    const { outputs, extra: grads } = prepare(named, raw);
    const placed = grads.map((g, i) => ({ node: g, at: at("grads", trained[i]!.layout) }));
    // The grad-norm partials get the bottom words of the first arena, reserved before planning.
    const lowered = lowerEntry({ outputs, inputs: traced.inputs, placed, leaves }, {
      ...lowerOpts,
      prefix: "t",
      reservedWords: gradNormScratchWords(count),
    });
    const optimizer = [...gradNormKernels(count, 0, lossScale), adamwKernel(count)];
    builder.add("trainStep", lowered, optimizer);
  }
  if (wanted.includes("forward")) {
    const { outputs } = prepare(named, []);
    const lowered = lowerEntry({ outputs, inputs: traced.inputs, placed: [], leaves }, {
      ...lowerOpts,
      prefix: "f",
    });
    builder.add("forward", lowered);
  }
  const state = new StateSlots();
  for (const name of wanted.filter((w) => w !== "trainStep" && w !== "forward")) {
    const t = trace(model, { config: opts.config ?? {}, dims: opts.dims ?? {}, entry: name });
    check([...Object.values(t.outputs), ...t.state.map((s) => s.output)]);
    const entryLeaves = new Map<number, Location>(t.params.map((p) => [p.node.id, leaves.get(p.node.id)!]));
    // A state value is read in place from its slot, like a parameter; its new value is lowered as
    // one more output and copied into the slot after the last kernel (so every kernel saw the old one),
    // unless its kernels can write it there in place (compiler/lower/state_in_place.ts).
    for (const s of t.state) entryLeaves.set(s.input.id, state.declare(name, s.input));
    const { outputs: outs } = prepare([
      ...Object.entries(t.outputs).map(([n, node]) => ({ name: n, node })),
      ...t.state.map((s) => ({ name: s.name, node: s.output })),
    ], []);
    const lowered = lowerEntry(
      {
        outputs: outs,
        inputs: t.inputs,
        placed: [],
        leaves: entryLeaves,
        state: t.state.map((s) => ({ name: s.name, input: s.input })),
      },
      { ...lowerOpts, prefix: `${name}_` },
    );
    builder.add(name, lowered, [], t.state.length ? state.copies(name, lowered) : undefined);
  }

  // The average's keep factor takes the slot after the optimizer's scalars, only when asked for.
  const average = opts.average === true;
  if (average) builder.addKernels("emaUpdate", [movingAverageKernel(count, SCALAR_COUNT)]);
  const scalarWords = SCALAR_COUNT + (average ? 1 : 0);
  const optimizer: OptimizerSpec = { ...DEFAULT_OPTIMIZER, ...opts.optimizer };
  return {
    version: 1,
    model: traced.name,
    config: traced.config,
    dims: traced.dims,
    buffers: [
      { name: "params", role: "parameter", bytes: 4 * Math.max(count, 1) },
      { name: "grads", role: "gradient", bytes: 4 * Math.max(count, 1) },
      { name: "adam_m", role: "optimizer", bytes: 4 * Math.max(count, 1) },
      { name: "adam_v", role: "optimizer", bytes: 4 * Math.max(count, 1) },
      { name: "decay_mask", role: "mask", bytes: 4 * Math.max(Math.ceil(count / 32), 1) },
      ...(average ? [{ name: AVERAGE_BUFFER, role: "average" as const, bytes: 4 * Math.max(count, 1) }] : []),
      ...builder.arenas(),
      { name: "scalars", role: "scalars", bytes: 4 * scalarWords },
      ...(state.slots.length ? [state.buffer(lowerOpts.arenaWords)] : []),
    ],
    kernels: builder.kernels,
    params,
    entries: builder.entries,
    ...(state.slots.length ? { state: state.slots } : {}),
    scalars: { ...SCALARS, ...(average ? { [AVERAGE_SCALAR]: SCALAR_COUNT } : {}) },
    optimizer,
    ...builder.features(),
  };
}

/**
 * Compiles a bare IR graph (no spec): parameters are its `param` leaves, and the one entry
 * `forward` computes `outputs`. With `grads`, entry `gradients` also writes d(outputs.loss)/d(param)
 * into `grads`. Used by the kernel conformance suite and by tools that build IR directly.
 */
export function compileGraph(
  outputs: Record<string, Node>,
  opts: {
    adapterClass?: "cpu" | "gpu";
    matmulVariant?: (s: MatmulShape) => MatmulVariant;
    grads?: boolean;
    fuse?: boolean;
    /** Activation storage precision (ModelDef.precision); default f32. */
    storage?: "f32" | "f16";
    /** The gradients' loss scale (Precision.lossScale); default that of `storage`. */
    lossScale?: number;
  } = {},
): Plan {
  const all = toposort(Object.values(outputs));
  const paramNodes = all.filter((n): n is Node<"param"> => n.op === "param");
  const inputs = all.filter((n): n is Node<"input"> => n.op === "input");
  let offset = 0;
  const params: ParamLayout[] = paramNodes.map((n) => {
    const layout: ParamLayout = {
      path: n.arg.path,
      shape: n.shape,
      dtype: n.dtype,
      offset,
      init: { kind: "zeros" },
      decay: false,
      frozen: false,
    };
    offset = alignParam(offset + size(n.shape));
    return layout;
  });
  const leaves = new Map<number, Location>(paramNodes.map((n, i) => [n.id, at("params", params[i]!)]));
  const adapterClass = opts.adapterClass ?? "cpu";
  const lowerOpts = {
    matmulVariant: (s: MatmulShape) => opts.matmulVariant?.(s) ?? defaultVariant(adapterClass, s),
    attentionVariant: (s: AttentionShape) => defaultAttentionVariant(adapterClass, s),
    adapterClass,
    fuse: opts.fuse ?? true,
    arenaWords: Math.floor(DEFAULT_BINDING_BYTES / 4),
    storage: opts.storage ?? "f32",
  };
  const outs = Object.entries(outputs).map(([name, node]) => ({ name, node }));
  const builder = new PlanBuilder();
  const add = (name: string, lowered: ReturnType<typeof lowerEntry>) => builder.add(name, lowered);
  add("forward", lowerEntry({ outputs: outs, inputs, placed: [], leaves }, { ...lowerOpts, prefix: "f" }));
  if (opts.grads) {
    const scale = opts.lossScale ?? lossScaleOf({ storage: opts.storage ?? "f32" });
    const g = scaledGrad(outputs.loss!, paramNodes, scale);
    const placed = g.map((node, i) => ({ node, at: at("grads", params[i]!) }));
    add("gradients", lowerEntry({ outputs: outs, inputs, placed, leaves }, { ...lowerOpts, prefix: "g" }));
  }
  const count = Math.max(offset, 1);
  return {
    version: 1,
    model: "graph",
    config: {},
    dims: {},
    buffers: [
      { name: "params", role: "parameter", bytes: 4 * count },
      { name: "grads", role: "gradient", bytes: 4 * count },
      ...builder.arenas(),
      { name: "scalars", role: "scalars", bytes: 4 * SCALAR_COUNT },
    ],
    kernels: builder.kernels,
    params,
    entries: builder.entries,
    scalars: { ...SCALARS },
    ...builder.features(),
  };
}

/** Collects lowered entries into one kernel list, and the arena sizes every entry fits in. */
class PlanBuilder {
  readonly kernels: Kernel[] = [];
  readonly entries: Record<string, EntryPlan> = {};
  readonly #arenaWords: number[] = [];
  readonly #halfWords: number[] = [];

  add(
    name: string,
    lowered: ReturnType<typeof lowerEntry>,
    extra: readonly Kernel[] = [],
    state?: { names: readonly string[]; copies: readonly Step[] },
  ) {
    const base = this.kernels.length;
    const all = [...lowered.kernels, ...extra];
    this.kernels.push(...all);
    const steps: Step[] = all.map((_, i) => ({ kind: "dispatch", kernel: base + i }));
    const stateNames = new Set(state?.names);
    this.entries[name] = {
      inputs: lowered.inputs,
      outputs: lowered.outputs.filter((o) => !stateNames.has(o.name)),
      steps: [...steps, ...state?.copies ?? []],
      ...(state ? { state: state.names } : {}),
      peakBytes: 4 * [...lowered.arenaWords, ...lowered.halfWords].reduce((a, b) => a + b, 0),
      ...(lowered.halfWords.length
        ? { halfPeakBytes: 4 * lowered.halfWords.reduce((a, b) => a + b, 0) }
        : {}),
      flops: all.reduce((s, k) => s + k.flops, 0),
    };
    lowered.arenaWords.forEach((w, i) => (this.#arenaWords[i] = Math.max(this.#arenaWords[i] ?? 0, w)));
    lowered.halfWords.forEach((w, i) => (this.#halfWords[i] = Math.max(this.#halfWords[i] ?? 0, w)));
  }

  /** An entry of kernels over whole buffers only: no inputs, outputs or activations. */
  addKernels(name: string, kernels: readonly Kernel[]) {
    const base = this.kernels.length;
    this.kernels.push(...kernels);
    this.entries[name] = {
      inputs: [],
      outputs: [],
      steps: kernels.map((_, i) => ({ kind: "dispatch", kernel: base + i })),
      peakBytes: 0,
      flops: kernels.reduce((s, k) => s + k.flops, 0),
    };
  }

  /** The act arenas, then the half arenas (bytes: 2 per f16 element, in whole 4-byte words). */
  arenas(): BufferSpec[] {
    const words = this.#arenaWords.length ? this.#arenaWords : [0];
    return [
      ...words.map((w, i): BufferSpec => ({
        name: arenaName(i),
        role: "activation",
        bytes: 4 * Math.max(w, 1),
      })),
      ...this.#halfWords.map((w, i): BufferSpec => ({
        name: halfArenaName(i),
        role: "activation",
        bytes: 4 * Math.max(w, 1),
      })),
    ];
  }

  /** The device features the plan's kernels need (absent when none). */
  features(): { features?: readonly string[] } {
    return this.#halfWords.length ? { features: F16_FEATURES } : {};
  }
}

/**
 * The "state" buffer: one slot per state name, shared by every entry that declares the name (the
 * cached entries of a model all read and write one KV cache). Two declarations must agree.
 */
class StateSlots {
  readonly slots: TensorSlot[] = [];
  readonly #declaredBy = new Map<string, string>();
  #words = 0;

  declare(entry: string, decl: Node<"input">): Location {
    const { name, shape, dtype } = decl.arg;
    const known = this.slots.find((s) => s.name === name);
    if (known) {
      const [was, is] = [`${known.dtype}[${known.shape}]`, `${dtype}[${shape}]`];
      if (was !== is) {
        throw new Error(
          `state "${name}" is ${is} in entry "${entry}" but ${was} in entry "${
            this.#declaredBy.get(name)
          }"; ` +
            `entries that share a state must declare it alike`,
        );
      }
      return { buffer: STATE_BUFFER, offset: known.offset };
    }
    const slot: TensorSlot = { name, shape, dtype, buffer: STATE_BUFFER, offset: this.#words };
    this.slots.push(slot);
    this.#declaredBy.set(name, entry);
    this.#words += size(shape);
    return { buffer: STATE_BUFFER, offset: slot.offset };
  }

  /** The steps that copy the entry's new state values (lowered as outputs) into their slots. */
  copies(entry: string, lowered: ReturnType<typeof lowerEntry>): { names: string[]; copies: Step[] } {
    const names: string[] = [];
    const copies: Step[] = [];
    for (const out of lowered.outputs) {
      const slot = this.slots.find((s) => s.name === out.name);
      if (!slot) continue;
      names.push(slot.name);
      if (out.buffer === slot.buffer && out.offset === slot.offset) continue; // returned unchanged
      if (out.buffer === STATE_BUFFER) {
        // WebGPU cannot copy within one buffer; a state set to another state's old value would need it.
        throw new Error(
          `entry "${entry}" sets state "${slot.name}" to another state's value unchanged; not supported`,
        );
      }
      copies.push({
        kind: "copy",
        buffer: slot.buffer,
        offset: slot.offset,
        words: size(slot.shape),
        from: { buffer: out.buffer, offset: out.offset },
      });
    }
    return { names, copies };
  }

  buffer(maxWords: number): BufferSpec {
    if (this.#words > maxWords) {
      const list = this.slots.map((s) => `${s.name} ${s.dtype}[${s.shape}]`).join(", ");
      throw new Error(
        `the entry state (${list}) needs ${4 * this.#words} bytes, more than one storage binding allows ` +
          `(${4 * maxWords}); use a smaller batch or seq for the stateful entries`,
      );
    }
    return { name: STATE_BUFFER, role: "state", bytes: 4 * Math.max(this.#words, 1) };
  }
}

const STATE_BUFFER = "state";

function at(buffer: string, p: ParamLayout): Location {
  return { buffer, offset: p.offset };
}

/**
 * Every parameter starts at a multiple of this many elements, so a matmul can read it as vec4s
 * (compiler/lower/matmul_vector_io.ts). The padding between parameters stays zero: no kernel writes
 * it, its gradient is zero, and AdamW (decay mask bit clear) leaves it zero.
 */
const PARAM_ALIGN = 4;
const alignParam = (elements: number) => Math.ceil(elements / PARAM_ALIGN) * PARAM_ALIGN;

/** Elements of the flat parameter vector: up to the last parameter's end, in whole vec4s. */
function paramCount(params: readonly ParamLayout[]): number {
  return alignParam(params.reduce((end, p) => Math.max(end, p.offset + size(p.shape)), 0));
}

/** Parameters in tree order in one flat vector (the AdamW kernel runs over all of it), vec4-aligned. */
function layoutParams(traced: TracedModel): ParamLayout[] {
  let offset = 0;
  return traced.params.map((p) => {
    const n = p.decl.shape.reduce((a, b) => a * b, 1);
    const layout: ParamLayout = {
      path: p.path,
      shape: p.decl.shape,
      dtype: p.decl.dtype,
      offset,
      init: p.decl.init,
      decay: p.decl.decay,
      frozen: p.decl.frozen,
    };
    offset = alignParam(offset + n);
    return layout;
  });
}
