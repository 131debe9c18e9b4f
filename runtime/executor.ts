/**
 * The executor: interprets a compiled Plan on a WebGPU device. Everything is built once in
 * `create` (buffers, pipelines, bind groups); `submit` only writes inputs, records one command
 * encoder with the entry's steps plus a copy of the outputs into a readback buffer, and submits it;
 * the outputs arrive later through `results`. `run` is `submit` then await.
 *
 * Why submit and results are apart: a readback (mapAsync) resolves no sooner than the runtime's
 * next device poll (~10-12 ms in Deno 2.9 however little work is queued), so a loop that awaits
 * every step is bound by that floor, not by its kernels. Readback buffers come from a per-entry pool
 * that grows with the number of runs in flight, so a caller may keep several steps queued and
 * read their losses when they are ready (runtime/train/in_flight.ts).
 */
import type { EntryPlan, ParamLayout, Plan, TensorSlot } from "../compiler/plan.ts";
import { decayMaskWords, SCALARS } from "../kernels/optimizer.ts";
import { buildKernels, type BuiltKernel, CountingDevice, type ExecutorStats } from "./_gpu_objects.ts";
import { checkFeatures, checkLimits, checkPlan } from "./_plan_check.ts";
import { DECODE, elements, encode, encodeInputs, type HostArray, slotWords } from "./_slots.ts";
import { adapterName, type DeviceHandle, openDevice } from "./device.ts";
import { initParams } from "./init.ts";

export type { ExecutorStats, HostArray };

export interface ExecutorOptions {
  /** Seeds parameter init and the automatic `seed` input. Default 0. */
  readonly seed?: number;
  readonly handle?: DeviceHandle;
  /** Learning rate of train steps that `run` gives none. */
  readonly lr?: number;
}

export interface RunOptions {
  readonly lr?: number;
  /** Values written into named `scalars` slots of the plan before the entry runs (e.g. `emaKeep`). */
  readonly scalars?: Readonly<Record<string, number>>;
}

/** What one submitted run gives back, once the device has it. */
export interface RunResults {
  readonly outputs: Record<string, HostArray>;
  /** A train step's global gradient norm (before clipping), read with its outputs. */
  readonly gradNorm?: number;
}

/** A run recorded and submitted; its results are read back asynchronously. */
export interface SubmittedRun {
  readonly entry: string;
  /** The executor's step after this run (a train step counts itself). */
  readonly step: number;
  /** Rejects with the device's validation error, if any. Await it: an ignored rejection is fatal. */
  readonly results: Promise<RunResults>;
}

/**
 * What `run(name)` records, read-only, for the profiler (runtime/profile): the device, the entry's
 * plan (steps, slots), each plan kernel built (pipeline and bind group), and the buffers by name.
 */
export interface EntryView {
  readonly device: GPUDevice;
  readonly plan: EntryPlan;
  readonly kernels: readonly BuiltKernel[];
  readonly buffers: ReadonlyMap<string, GPUBuffer>;
}

interface PreparedEntry {
  readonly plan: EntryPlan;
  /** Dispatches a kernel that writes optimizer state: bump the step and bias corrections first. */
  readonly updatesOptimizer: boolean;
  /** Bytes one run reads back: the outputs, then (train steps) the grad norm word. */
  readonly readbackBytes: number;
  /** Readback buffers not in use; a run in flight holds one until its results are read. */
  readonly freeReadbacks: GPUBuffer[];
  /** Every readback buffer made for the entry, to destroy them all. */
  readonly allReadbacks: GPUBuffer[];
  /** Byte offset of each output in a readback buffer. */
  readonly outputOffsets: readonly number[];
}

const STATE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const READBACK_USAGE = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
/** Largest chunk `getParam` and friends copy through the staging buffer at once. */
const STAGING_BYTES = 16 << 20;

export class Executor {
  #t = 0;
  #alive = true;
  /** How often each plan kernel has been dispatched: proof that a plan's kernels all ran. */
  readonly #dispatched: Uint32Array;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly plan: Plan,
    private readonly device: GPUDevice,
    private readonly gpu: CountingDevice,
    private readonly buffers: ReadonlyMap<string, GPUBuffer>,
    private readonly kernels: readonly BuiltKernel[],
    private readonly entries: ReadonlyMap<string, PreparedEntry>,
    private readonly staging: GPUBuffer,
    private readonly seed: number,
    private readonly defaultLr: number | undefined,
  ) {
    this.#dispatched = new Uint32Array(plan.kernels.length);
  }

  static async create(plan: Plan, opts: ExecutorOptions = {}): Promise<Executor> {
    checkPlan(plan);
    const { adapter, device } = opts.handle ?? await openDevice();
    checkFeatures(plan, new Set(device.features), adapterName(adapter.info));
    checkLimits(plan, device);
    const gpu = new CountingDevice(device);
    const seed = (opts.seed ?? 0) >>> 0;
    const buffers = new Map(
      plan.buffers.map((b) => [b.name, gpu.buffer(b.name, Math.max(b.bytes, 4), STATE_USAGE)]),
    );
    writeInitialState(device, plan, buffers, seed, opts.lr ?? 0);
    const kernels = await buildKernels(gpu, plan.kernels, buffers);
    const entries = new Map(
      Object.entries(plan.entries).map(([name, e]) => [name, prepare(gpu, plan, name, e)]),
    );
    const largest = Math.max(4, ...plan.buffers.map((b) => b.bytes));
    const staging = gpu.buffer("staging", Math.min(largest, STAGING_BYTES), READBACK_USAGE);
    return new Executor(plan, device, gpu, buffers, kernels, entries, staging, seed, opts.lr);
  }

  /** Optimizer steps taken; the next train step uses t = step + 1 for bias correction. */
  get step(): number {
    return this.#t;
  }

  set step(t: number) {
    if (!Number.isInteger(t) || t < 0) throw new Error(`step must be a non-negative integer, got ${t}`);
    this.#t = t;
  }

  stats(): ExecutorStats {
    return { ...this.gpu.counts };
  }

  /** Dispatch count per kernel index of the plan since creation. */
  dispatchCounts(): Uint32Array {
    return this.#dispatched.slice();
  }

  /**
   * The GPU objects `run(name)` uses, for recording the entry another way (one timed pass per
   * dispatch). Work recorded with them bypasses `run`'s ordering and its step count: await every
   * run first, and do not destroy the executor while it is in flight.
   */
  entryView(name: string): EntryView {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`no entry "${name}" in plan "${this.plan.model}"`);
    return { device: this.device, plan: entry.plan, kernels: this.kernels, buffers: this.buffers };
  }

  /**
   * Runs entry `name` and waits for its outputs. The `seed` input (u32[2]), when the entry has one
   * and it is not given, is [executor seed, step]; a train step first advances the step and writes
   * lr and bias corrections.
   */
  async run(
    name: string,
    inputs: Readonly<Record<string, ArrayLike<number>>>,
    opts: RunOptions = {},
  ): Promise<Record<string, HostArray>> {
    return (await (await this.submit(name, inputs, opts)).results).outputs;
  }

  /**
   * Records and submits entry `name` (as `run`), resolving once it is submitted, not when it has
   * run: the next submit may follow at once, and the queue runs them in order. Parameter reads and
   * writes queued after it see its effects.
   */
  submit(
    name: string,
    inputs: Readonly<Record<string, ArrayLike<number>>>,
    opts: RunOptions = {},
  ): Promise<SubmittedRun> {
    return this.#serial(() => this.#submit(name, inputs, opts));
  }

  async #submit(
    name: string,
    inputs: Readonly<Record<string, ArrayLike<number>>>,
    opts: RunOptions,
  ): Promise<SubmittedRun> {
    const entry = this.entries.get(name);
    if (!entry) {
      throw new Error(
        `no entry "${name}" in plan "${this.plan.model}"; entries: ${Object.keys(this.plan.entries)}`,
      );
    }
    const stateGiven = Object.keys(inputs).filter((k) => this.plan.state?.some((s) => s.name === k));
    if (stateGiven.length) {
      throw new Error(
        `entry "${name}": ${stateGiven.map((k) => `"${k}"`).join(", ")} is persistent state, not an input; ` +
          `it lives on the device across runs (use setState / resetState to change it)`,
      );
    }
    const host = encodeInputs(name, entry.plan.inputs, inputs);
    const t = entry.updatesOptimizer ? this.#t + 1 : this.#t;
    const seedSlot = entry.plan.inputs.find((s) => s.name === "seed");
    if (seedSlot && !("seed" in inputs)) host.set(seedSlot, encode(name, seedSlot, [this.seed, t]));
    if (entry.updatesOptimizer) this.#writeStepScalars(name, t, opts.lr ?? this.defaultLr);
    for (const [scalar, value] of Object.entries(opts.scalars ?? {})) this.#writeScalar(name, scalar, value);
    for (const [slot, data] of host) {
      // Deno 2.9 panics on a zero-length writeBuffer; an empty input has nothing to write anyway.
      if (data.length > 0) this.device.queue.writeBuffer(this.#buffer(slot.buffer), slot.offset * 4, data);
    }

    this.device.pushErrorScope("validation");
    const encoder = this.device.createCommandEncoder({ label: name });
    this.#record(name, encoder, entry.plan.steps);
    const readback = entry.readbackBytes > 0
      ? entry.freeReadbacks.pop() ?? newReadback(this.gpu, name, entry)
      : undefined;
    if (readback) this.#recordReadback(encoder, entry, readback);
    this.device.queue.submit([encoder.finish()]);
    const error = await this.device.popErrorScope();
    if (error) {
      if (readback) entry.freeReadbacks.push(readback);
      throw new Error(`entry "${name}" failed on the device: ${error.message}`);
    }
    if (entry.updatesOptimizer) this.#t = t;
    return { entry: name, step: t, results: this.#readResults(entry, readback) };
  }

  /** The entry's steps into `encoder`: dispatches share a compute pass until a clear or copy. */
  #record(label: string, encoder: GPUCommandEncoder, steps: EntryPlan["steps"]) {
    let pass: GPUComputePassEncoder | undefined;
    for (const step of steps) {
      if (step.kind === "dispatch") {
        const k = this.kernels[step.kernel]!;
        pass ??= encoder.beginComputePass({ label });
        pass.setPipeline(k.pipeline);
        pass.setBindGroup(0, k.bindGroup);
        pass.dispatchWorkgroups(...k.kernel.dispatch);
        this.#dispatched[step.kernel]!++;
      } else if (step.kind === "clear") {
        pass?.end();
        pass = undefined;
        encoder.clearBuffer(this.#buffer(step.buffer), step.offset * 4, step.words * 4);
      } else {
        pass?.end();
        pass = undefined;
        if (step.words > 0) {
          const from = this.#buffer(step.from.buffer);
          encoder.copyBufferToBuffer(
            from,
            step.from.offset * 4,
            this.#buffer(step.buffer),
            step.offset * 4,
            step.words * 4,
          );
        }
      }
    }
    pass?.end();
  }

  /** Copies the entry's outputs (and a train step's grad norm) into `readback`, in one layout. */
  #recordReadback(encoder: GPUCommandEncoder, entry: PreparedEntry, readback: GPUBuffer) {
    entry.plan.outputs.forEach((slot, i) => {
      const bytes = slotWords(slot) * 4;
      if (bytes === 0) return;
      encoder.copyBufferToBuffer(
        this.#buffer(slot.buffer),
        slot.offset * 4,
        readback,
        entry.outputOffsets[i]!,
        bytes,
      );
    });
    if (entry.updatesOptimizer) {
      encoder.copyBufferToBuffer(
        this.#buffer("scalars"),
        scalarIndex(this.plan, "gradNorm") * 4,
        readback,
        entry.readbackBytes - 4,
        4,
      );
    }
  }

  async #readResults(entry: PreparedEntry, readback: GPUBuffer | undefined): Promise<RunResults> {
    const outputs: Record<string, HostArray> = {};
    if (!readback) {
      for (const slot of entry.plan.outputs) outputs[slot.name] = DECODE[slot.dtype](new ArrayBuffer(0));
      return { outputs };
    }
    let bytes: ArrayBuffer;
    try {
      bytes = await readMapped(readback, entry.readbackBytes);
    } finally {
      // A destroyed executor's buffers are gone; a live one takes the buffer back for the next run.
      if (this.#alive) entry.freeReadbacks.push(readback);
    }
    entry.plan.outputs.forEach((slot, i) => {
      const start = entry.outputOffsets[i]!;
      outputs[slot.name] = DECODE[slot.dtype](bytes.slice(start, start + slotWords(slot) * 4));
    });
    if (!entry.updatesOptimizer) return { outputs };
    return { outputs, gradNorm: new Float32Array(bytes, entry.readbackBytes - 4, 1)[0]! };
  }

  #writeScalar(entry: string, name: string, value: number) {
    const index = this.plan.scalars[name];
    if (index === undefined) {
      throw new Error(
        `entry "${entry}": plan "${this.plan.model}" has no scalar "${name}"; ` +
          `scalars: ${Object.keys(this.plan.scalars).join(", ")}`,
      );
    }
    this.device.queue.writeBuffer(this.#buffer("scalars"), index * 4, new Float32Array([value]));
  }

  #writeStepScalars(entry: string, t: number, lr: number | undefined) {
    if (lr === undefined || !Number.isFinite(lr) || lr < 0) {
      throw new Error(
        `entry "${entry}" updates parameters and needs a finite learning rate >= 0, got ${lr}: ` +
          `pass run(entry, inputs, { lr }) or Executor.create(plan, { lr })`,
      );
    }
    const opt = this.plan.optimizer!;
    const write = (name: keyof typeof SCALARS, x: number) =>
      this.device.queue.writeBuffer(
        this.#buffer("scalars"),
        scalarIndex(this.plan, name) * 4,
        new Float32Array([x]),
      );
    write("lr", lr);
    write("bc1", 1 - opt.beta1 ** t);
    write("bc2", 1 - opt.beta2 ** t);
  }

  getParam(path: string): Promise<Float32Array> {
    return this.#readParamRange("params", path);
  }

  getGradient(path: string): Promise<Float32Array> {
    return this.#readParamRange("grads", path);
  }

  async getOptimizerState(path: string): Promise<{ m: Float32Array; v: Float32Array }> {
    return { m: await this.#readParamRange("adam_m", path), v: await this.#readParamRange("adam_v", path) };
  }

  setParam(path: string, data: ArrayLike<number>): Promise<void> {
    return this.#writeParamRange("params", path, data);
  }

  async setOptimizerState(
    path: string,
    state: { m: ArrayLike<number>; v: ArrayLike<number> },
  ): Promise<void> {
    await this.#writeParamRange("adam_m", path, state.m);
    await this.#writeParamRange("adam_v", path, state.v);
  }

  /** Every parameter by path, read with one pass over the `params` buffer. */
  getAllParams(): Promise<Map<string, Float32Array>> {
    return this.#serial(async () => {
      const all = new Float32Array(await this.#readWords("params", 0, this.#buffer("params").size / 4));
      return new Map(
        this.plan.params.map((p) => [p.path, all.slice(p.offset, p.offset + elements(p.shape))]),
      );
    });
  }

  /**
   * Whole parameter-shaped buffers (params, adam_m, adam_v, ema: every parameter at its offset) by
   * path, copied with one command buffer into one readback: a checkpoint costs a single wait, and
   * every buffer is read at the same point of the queue (after the runs submitted before it).
   * The readback buffer is made for the call and destroyed after it (checkpoints are rare).
   */
  readParamBuffers(names: readonly string[]): Promise<Map<string, Map<string, Float32Array>>> {
    return this.#serial(async () => {
      const sources = names.map((n) => this.#buffer(n));
      const offsets: number[] = [];
      let total = 0;
      for (const b of sources) offsets.push(total), total += b.size;
      const target = this.gpu.buffer(`read ${names.join("+")}`, Math.max(total, 4), READBACK_USAGE);
      try {
        const encoder = this.device.createCommandEncoder({ label: `read ${names.join(", ")}` });
        sources.forEach((b, i) => encoder.copyBufferToBuffer(b, 0, target, offsets[i]!, b.size));
        this.device.queue.submit([encoder.finish()]);
        const bytes = await readMapped(target, total);
        return new Map(names.map((name, i) => {
          const all = new Float32Array(bytes, offsets[i]!, sources[i]!.size / 4);
          const byPath = this.plan.params.map((
            p,
          ) => [p.path, all.slice(p.offset, p.offset + elements(p.shape))]);
          return [name, new Map(byPath as [string, Float32Array][])];
        }));
      } finally {
        target.destroy();
      }
    });
  }

  /** Fills a buffer of role "data" (a data source's table, compiler/gather_inputs.ts) once. */
  setData(name: string, values: Float32Array<ArrayBuffer>): Promise<void> {
    return this.#serial(() => {
      const spec = this.plan.buffers.find((b) => b.name === name);
      if (!spec || spec.role !== "data") {
        const data = this.plan.buffers.filter((b) => b.role === "data").map((b) => b.name);
        throw new Error(
          `plan "${this.plan.model}" has no data buffer "${name}"; data buffers: ${
            data.join(", ") || "none"
          }`,
        );
      }
      if (values.length * 4 !== spec.bytes) {
        throw new Error(`data buffer "${name}" holds ${spec.bytes / 4} values, got ${values.length}`);
      }
      this.device.queue.writeBuffer(this.#buffer(name), 0, values);
      return Promise.resolve();
    });
  }

  /** Whether the plan has buffer `name` (the moving average's `ema` is optional). */
  hasBuffer(name: string): boolean {
    return this.buffers.has(name);
  }

  /** Writes a whole parameter-shaped buffer from values by path (the paths must be the plan's). */
  setParamBuffer(name: string, values: ReadonlyMap<string, ArrayLike<number>>): Promise<void> {
    return this.#serial(() => {
      const buffer = this.#buffer(name);
      const words = new Float32Array(buffer.size / 4);
      for (const p of this.plan.params) {
        const v = values.get(p.path);
        if (!v || v.length !== elements(p.shape)) {
          throw new Error(
            `buffer "${name}": parameter "${p.path}" ${
              v ? `has ${v.length} values, expected ${elements(p.shape)}` : "is missing"
            }`,
          );
        }
        words.set(v, p.offset);
      }
      this.device.queue.writeBuffer(buffer, 0, words);
      return Promise.resolve();
    });
  }

  /** Sets every parameter; the paths must be exactly the plan's. */
  async setAllParams(values: ReadonlyMap<string, ArrayLike<number>>): Promise<void> {
    const known = new Set(this.plan.params.map((p) => p.path));
    const unknown = [...values.keys()].filter((k) => !known.has(k));
    const missing = [...known].filter((k) => !values.has(k));
    if (unknown.length || missing.length) {
      throw new Error(
        `setAllParams: unknown paths [${unknown.join(", ")}], missing paths [${missing.join(", ")}]`,
      );
    }
    for (const [path, data] of values) await this.setParam(path, data);
  }

  /** One value of the `scalars` buffer, e.g. the last train step's `gradNorm`. */
  getScalar(name: keyof typeof SCALARS): Promise<number> {
    return this.#serial(async () => {
      const words = await this.#readWords("scalars", scalarIndex(this.plan, name), 1);
      return new Float32Array(words)[0]!;
    });
  }

  /** Zeroes every state slot (a fresh KV cache), as at creation. */
  resetState(): Promise<void> {
    return this.#serial(() => {
      const buffer = this.buffers.get("state");
      if (buffer) {
        const encoder = this.device.createCommandEncoder({ label: "reset state" });
        encoder.clearBuffer(buffer);
        this.device.queue.submit([encoder.finish()]);
      }
      return Promise.resolve();
    });
  }

  /** The current value of state `name`, as its dtype's typed array. */
  getState(name: string): Promise<HostArray> {
    return this.#serial(async () => {
      const slot = this.#stateSlot(name);
      return DECODE[slot.dtype](await this.#readWords(slot.buffer, slot.offset, slotWords(slot)));
    });
  }

  /** Overwrites state `name` (checked and converted like an input). */
  setState(name: string, data: ArrayLike<number>): Promise<void> {
    return this.#serial(() => {
      const slot = this.#stateSlot(name);
      const words = encode(`setState`, slot, data);
      if (words.length > 0) this.device.queue.writeBuffer(this.#buffer(slot.buffer), slot.offset * 4, words);
      return Promise.resolve();
    });
  }

  #stateSlot(name: string): TensorSlot {
    const slot = this.plan.state?.find((s) => s.name === name);
    if (!slot) {
      const known = this.plan.state?.map((s) => s.name).join(", ") || "none";
      throw new Error(`plan "${this.plan.model}" has no state "${name}"; state: ${known}`);
    }
    return slot;
  }

  /** Frees every GPU buffer; the executor is unusable afterwards. */
  destroy(): void {
    this.#alive = false;
    for (const b of this.buffers.values()) b.destroy();
    for (const e of this.entries.values()) e.allReadbacks.forEach((b) => b.destroy());
    this.staging.destroy();
    this.gpu.owned.forEach((b) => b.destroy());
  }

  /** Runs `work` after everything queued before it, so runs and reads never interleave. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => {
      if (!this.#alive) throw new Error("the executor was destroyed");
      return work();
    });
    this.#tail = result.catch(() => undefined);
    return result;
  }

  #buffer(name: string): GPUBuffer {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`plan "${this.plan.model}" has no buffer "${name}"`);
    return b;
  }

  #layout(path: string): ParamLayout {
    const p = this.plan.params.find((p) => p.path === path);
    if (!p) {
      throw new Error(
        `no parameter "${path}"; parameters: ${this.plan.params.map((p) => p.path).join(", ")}`,
      );
    }
    return p;
  }

  #readParamRange(buffer: string, path: string): Promise<Float32Array> {
    return this.#serial(async () => {
      const p = this.#layout(path);
      return new Float32Array(await this.#readWords(buffer, p.offset, elements(p.shape)));
    });
  }

  #writeParamRange(buffer: string, path: string, data: ArrayLike<number>): Promise<void> {
    return this.#serial(() => {
      const p = this.#layout(path);
      const size = elements(p.shape);
      if (data.length !== size) {
        throw new Error(`"${path}" [${p.shape.join(", ")}] has ${size} elements, got ${data.length} values`);
      }
      if (size > 0) {
        this.device.queue.writeBuffer(this.#buffer(buffer), p.offset * 4, Float32Array.from(data));
      }
      return Promise.resolve();
    });
  }

  /** Copies a word range of a buffer to the host through the staging buffer, a chunk at a time. */
  async #readWords(buffer: string, offset: number, words: number): Promise<ArrayBuffer> {
    const source = this.#buffer(buffer);
    const out = new Uint8Array(words * 4);
    for (let done = 0; done < out.length; done += this.staging.size) {
      const n = Math.min(this.staging.size, out.length - done);
      const encoder = this.device.createCommandEncoder({ label: `read ${buffer}` });
      encoder.copyBufferToBuffer(source, offset * 4 + done, this.staging, 0, n);
      this.device.queue.submit([encoder.finish()]);
      out.set(new Uint8Array(await readMapped(this.staging, n)), done);
    }
    return out.buffer;
  }
}

async function readMapped(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  await buffer.mapAsync(GPUMapMode.READ, 0, bytes);
  const copy = buffer.getMappedRange(0, bytes).slice(0);
  buffer.unmap();
  return copy;
}

/** Index of scalar `name` in `scalars`: the plan's own map, else the optimizer kernels' layout. */
function scalarIndex(plan: Plan, name: keyof typeof SCALARS): number {
  return plan.scalars[name] ?? SCALARS[name];
}

/** Params from the seeded init, the decay mask, and the optimizer constants. */
function writeInitialState(
  device: GPUDevice,
  plan: Plan,
  buffers: ReadonlyMap<string, GPUBuffer>,
  seed: number,
  lr: number,
) {
  const params = buffers.get("params");
  if (params) device.queue.writeBuffer(params, 0, initParams(plan.params, params.size / 4, seed));
  const mask = buffers.get("decay_mask");
  if (mask && params) device.queue.writeBuffer(mask, 0, decayMaskWords(plan.params, params.size / 4));
  const scalarsBuffer = buffers.get("scalars");
  if (!scalarsBuffer) return;
  const scalars = new Float32Array(scalarsBuffer.size / 4);
  const set = (name: keyof typeof SCALARS, x: number) => {
    const i = scalarIndex(plan, name);
    if (i < scalars.length) scalars[i] = x;
  };
  set("clipScale", 1);
  set("lr", lr);
  const opt = plan.optimizer;
  if (opt) {
    set("beta1", opt.beta1);
    set("beta2", opt.beta2);
    set("eps", opt.eps);
    set("weightDecay", opt.weightDecay);
    set("clipNorm", opt.clipNorm);
    set("bc1", 1);
    set("bc2", 1);
  }
  device.queue.writeBuffer(scalarsBuffer, 0, scalars);
}

function prepare(gpu: CountingDevice, plan: Plan, name: string, entry: EntryPlan): PreparedEntry {
  const roles = new Map(plan.buffers.map((b) => [b.name, b.role]));
  const updatesOptimizer = entry.steps.some((s) =>
    s.kind === "dispatch" &&
    plan.kernels[s.kernel]!.bindings.some((b) =>
      b.access === "read_write" && roles.get(b.buffer) === "optimizer"
    )
  );
  if (updatesOptimizer && !plan.optimizer) {
    throw new Error(`entry "${name}" writes optimizer state but plan "${plan.model}" has no optimizer spec`);
  }
  const outputOffsets: number[] = [];
  let total = 0;
  for (const slot of entry.outputs) {
    outputOffsets.push(total);
    total += slotWords(slot) * 4;
  }
  const readbackBytes = total + (updatesOptimizer ? 4 : 0);
  const prepared: PreparedEntry = {
    plan: entry,
    updatesOptimizer,
    readbackBytes,
    freeReadbacks: [],
    allReadbacks: [],
    outputOffsets,
  };
  if (readbackBytes > 0) prepared.freeReadbacks.push(newReadback(gpu, name, prepared));
  return prepared;
}

function newReadback(gpu: CountingDevice, name: string, entry: PreparedEntry): GPUBuffer {
  const buffer = gpu.buffer(`${name} outputs`, entry.readbackBytes, READBACK_USAGE);
  entry.allReadbacks.push(buffer);
  return buffer;
}
