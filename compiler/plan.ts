import type { DType } from "./ir/mod.ts";
import type { Kernel } from "../kernels/kernel.ts";

/**
 * The compiler's output: plain, JSON-serializable data. The runtime allocates `buffers`, builds
 * `kernels`, and runs the `steps` of an entry point in order; it makes no compilation decisions, so
 * a saved plan runs without the compiler.
 */
export interface Plan {
  readonly version: 1;
  readonly model: string;
  /** Config and dim bindings the plan was compiled for (for checkpoints and messages). */
  readonly config: unknown;
  readonly dims: Readonly<Record<string, number>>;
  readonly buffers: readonly BufferSpec[];
  readonly kernels: readonly Kernel[];
  readonly params: readonly ParamLayout[];
  readonly entries: Readonly<Record<string, EntryPlan>>;
  /**
   * Persistent entry state (a KV cache), one slot per name in the buffer "state" (role "state").
   * The executor zeroes it at creation; it survives every `run` of every entry. Absent: no state.
   */
  readonly state?: readonly TensorSlot[];
  /** Index of each per-step scalar in the `scalars` buffer. */
  readonly scalars: Readonly<Record<string, number>>;
  readonly optimizer?: OptimizerSpec;
  /**
   * WebGPU features the kernels need; the executor refuses a device without them. "shader-f16":
   * activations stored in f16 (ModelDef.precision). Absent: none.
   */
  readonly features?: readonly string[];
}

export type BufferRole =
  | "parameter"
  | "gradient"
  | "optimizer"
  /** The parameters' moving average (`ema`), parameter-shaped like `params`. */
  | "average"
  /** A data source's tables on the device (`data_<table>`), written once by the runtime. */
  | "data"
  | "activation"
  | "scalars"
  | "mask"
  | "state";

export interface BufferSpec {
  /**
   * The WGSL variable name kernels use: params, grads, adam_m, adam_v, act, scalars, decay_mask;
   * `half`, `half1`, ... are activation arenas of f16 elements (role "activation").
   */
  readonly name: string;
  readonly role: BufferRole;
  /** Size in bytes (a multiple of 4). */
  readonly bytes: number;
}

export interface ParamLayout {
  /** Tree path, the checkpoint name: `blocks.3.attn.wq.w`. */
  readonly path: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Element offset in `params` (and in `grads`, `adam_m`, `adam_v`). */
  readonly offset: number;
  readonly init: ParamInit;
  readonly decay: boolean;
  /** A constant of the model: stored and checkpointed like a parameter, never trained. */
  readonly frozen: boolean;
}

export type ParamInit =
  | { kind: "normal"; std: number }
  | { kind: "uniform"; bound: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  /** Given values (a schedule table, a fixed embedding), row-major. */
  | { kind: "values"; data: readonly number[] };

/** Where a named input or output lives: a range of 32-bit words in the `act` arena. */
export interface TensorSlot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly buffer: string;
  /** Element (32-bit word) offset in `buffer`. */
  readonly offset: number;
}

export type Step =
  | { readonly kind: "dispatch"; readonly kernel: number }
  /** Zero a word range of a buffer (gradients before accumulation). */
  | { readonly kind: "clear"; readonly buffer: string; readonly offset: number; readonly words: number }
  /**
   * Copy `words` words from `from` into `buffer` at `offset` (the range written, as for "clear"):
   * an entry's new state into its slot, after every kernel has read the old value.
   */
  | {
    readonly kind: "copy";
    readonly buffer: string;
    readonly offset: number;
    readonly words: number;
    readonly from: { readonly buffer: string; readonly offset: number };
  };

export interface EntryPlan {
  readonly inputs: readonly TensorSlot[];
  readonly outputs: readonly TensorSlot[];
  readonly steps: readonly Step[];
  /** Names of the `Plan.state` slots this entry reads and writes (absent: none). */
  readonly state?: readonly string[];
  /** Bytes of the activation arenas (act and half) this entry needs at its peak (the memory plan). */
  readonly peakBytes: number;
  /** Of `peakBytes`, the half arenas' share (2 bytes per f16 element); absent with f32 storage. */
  readonly halfPeakBytes?: number;
  readonly flops: number;
}

export interface OptimizerSpec {
  readonly kind: "adamw";
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  readonly clipNorm: number;
}
