/**
 * Profiles one step of an entry on the executor's device: each dispatch's GPU time, and the host's
 * work around it (input writes, encoding, submit, waiting for the results), so the gaps the host
 * leaves show. With "timestamp-query" every dispatch gets a compute pass of its own whose
 * beginning and end timestamps go to a query set; without it each dispatch is submitted alone and
 * timed on the host (labelled so: it includes submit and wake-up overhead).
 *
 * The profiled step records the entry's steps itself (through `Executor.entryView`), so it does not
 * advance the executor's step or write the per-step scalars: a train step repeats the previous
 * run's step count, lr and bias corrections. That is why warm-up runs go through `run` first.
 */
import type { EntryView, Executor } from "../executor.ts";
import { adapterName } from "../device.ts";
import { encode, encodeInputs, slotWords } from "../_slots.ts";
import { ticksToMicros } from "./trace.ts";

export type Timing = "timestamp-query" | "host";

export interface ProfiledDispatch {
  /** Index in the entry's steps. */
  readonly step: number;
  /** Index in the plan's kernels. */
  readonly kernel: number;
  readonly name: string;
  readonly ops: readonly string[];
  readonly workgroups: readonly number[];
  /** Microseconds from the start of the step. */
  readonly startUs: number;
  readonly durUs: number;
}

export interface HostSpan {
  readonly name: string;
  readonly startUs: number;
  readonly durUs: number;
  readonly args?: Readonly<Record<string, unknown>>;
}

export interface Profile {
  readonly model: string;
  readonly entry: string;
  readonly adapter: string;
  readonly dims: Readonly<Record<string, number>>;
  readonly timing: Timing;
  readonly tickNs: number;
  /** One per dispatch step of the entry, in step order. */
  readonly dispatches: readonly ProfiledDispatch[];
  /** Clears and copies: encoder work between passes, shown where it falls, without a time. */
  readonly untimed: readonly { readonly name: string; readonly step: number; readonly atUs: number }[];
  readonly host: readonly HostSpan[];
  /** Host time from the first input write to the results on the host. */
  readonly wallUs: number;
  /** Sum of the dispatches' GPU time. */
  readonly kernelUs: number;
  /** The last warm-up's wall time through `Executor.run` (one pass, no timestamps), when there was one after the first. */
  readonly plainStepUs?: number;
}

export interface ProfileOptions {
  /** Runs of the entry through `Executor.run` before the profiled step (default 2). */
  readonly warmup?: number;
  /** Default: "timestamp-query" where the device has it, else "host". */
  readonly timing?: Timing;
  /** Nanoseconds per timestamp tick (default 1: WebGPU's unit; see ticksToMicros). */
  readonly tickNs?: number;
  /** Learning rate of the warm-up runs of a train step. */
  readonly lr?: number;
  /** The `seed` input of the profiled step when `inputs` has none: [seed, executor step]. */
  readonly seed?: number;
}

/** WebGPU's largest query set; each dispatch takes two queries. */
const MAX_QUERIES = 4096;

/** Warms up, then profiles one step of entry `name` on `inputs`. */
export async function profileEntry(
  ex: Executor,
  name: string,
  inputs: Readonly<Record<string, ArrayLike<number>>>,
  opts: ProfileOptions = {},
): Promise<Profile> {
  const view = ex.entryView(name);
  const timing = opts.timing ?? (view.device.features.has("timestamp-query") ? "timestamp-query" : "host");
  if (timing === "timestamp-query" && !view.device.features.has("timestamp-query")) {
    throw new Error(
      `profiling with timestamp-query: the device on "${adapterName(view.device.adapterInfo)}" ` +
        `lacks the feature; use timing "host"`,
    );
  }
  const warmup = opts.warmup ?? 2;
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new Error(`warmup must be an integer >= 0, got ${warmup}`);
  }
  let plainStepUs: number | undefined;
  for (let i = 0; i < warmup; i++) {
    const t0 = performance.now();
    await ex.run(name, inputs, opts.lr === undefined ? {} : { lr: opts.lr });
    if (i > 0) plainStepUs = (performance.now() - t0) * 1000;
  }
  const host = encodeInputs(name, view.plan.inputs, inputs);
  const seedSlot = view.plan.inputs.find((s) => s.name === "seed");
  if (seedSlot && !("seed" in inputs)) host.set(seedSlot, encode(name, seedSlot, [opts.seed ?? 0, ex.step]));

  const recorder = new StepRecorder(view, name, opts.tickNs ?? 1);
  try {
    const timed = timing === "timestamp-query"
      ? await recorder.withTimestamps(host)
      : await recorder.hostTimed(host);
    return {
      model: ex.plan.model,
      entry: name,
      adapter: adapterName(view.device.adapterInfo),
      dims: ex.plan.dims,
      timing,
      tickNs: opts.tickNs ?? 1,
      ...timed,
      kernelUs: timed.dispatches.reduce((s, d) => s + d.durUs, 0),
      ...(plainStepUs === undefined ? {} : { plainStepUs }),
    };
  } finally {
    recorder.destroy();
  }
}

type Timed = Pick<Profile, "dispatches" | "untimed" | "host" | "wallUs">;
type HostInputs = ReturnType<typeof encodeInputs>;

/** Records one step of an entry, timed one of the two ways; owns the buffers it creates. */
class StepRecorder {
  readonly #created: { destroy(): void }[] = [];
  readonly #device: GPUDevice;
  /** performance.now() when the step began: its first input write. */
  #t0 = 0;
  readonly #spans: HostSpan[] = [];

  constructor(
    private readonly view: EntryView,
    private readonly name: string,
    private readonly tickNs: number,
  ) {
    this.#device = view.device;
  }

  destroy() {
    for (const o of this.#created) o.destroy();
  }

  /** One pass per dispatch with beginning and end timestamps; one submit for the whole step. */
  async withTimestamps(inputs: HostInputs): Promise<Timed> {
    const device = this.#device;
    const { steps } = this.view.plan;
    const dispatchSteps = steps.flatMap((s, i) => (s.kind === "dispatch" ? [i] : []));
    const perSet = MAX_QUERIES / 2;
    const querySets = Array.from(
      { length: Math.ceil(dispatchSteps.length / perSet) },
      (_, i) =>
        this.#own(
          device.createQuerySet({
            type: "timestamp",
            count: 2 * Math.min(perSet, dispatchSteps.length - i * perSet),
          }),
        ),
    );
    const tsBytes = Math.max(8, dispatchSteps.length * 16);
    const resolved = this.#buffer(
      "timestamps",
      tsBytes,
      GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    );
    const tsRead = this.#buffer(
      "timestamps read",
      tsBytes,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    const outputs = this.#outputsBuffer();

    this.#t0 = performance.now();
    this.#span("write inputs", () => this.#writeInputs(inputs), { inputs: inputs.size });
    device.pushErrorScope("validation");
    const encoder = this.#span("encode", () => {
      const encoder = device.createCommandEncoder({ label: `profile ${this.name}` });
      let d = 0;
      this.#encodeSteps(encoder, (label) => {
        const set = querySets[Math.floor(d / perSet)]!;
        const q = 2 * (d++ % perSet);
        return encoder.beginComputePass({
          label,
          timestampWrites: { querySet: set, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
        });
      });
      querySets.forEach((set, i) => encoder.resolveQuerySet(set, 0, set.count, resolved, i * perSet * 16));
      encoder.copyBufferToBuffer(resolved, 0, tsRead, 0, tsBytes);
      this.#copyOutputs(encoder, outputs);
      return encoder.finish();
    }, { passes: dispatchSteps.length });
    const submitStart = this.#now();
    this.#span("submit", () => device.queue.submit([encoder]));
    const waitStart = this.#now();
    // A validation error shows as a failed map: report the scope's error, which names the cause.
    const mapped = await Promise.all([tsRead.mapAsync(GPUMapMode.READ), outputs?.mapAsync(GPUMapMode.READ)])
      .then(() => undefined, (e: unknown) => e);
    const waitEnd = this.#now();
    if (mapped !== undefined) {
      const error = await device.popErrorScope();
      throw new Error(`profiling entry "${this.name}" failed on the device: ${error?.message ?? mapped}`);
    }
    this.#spans.push({ name: "wait for results", startUs: waitStart, durUs: waitEnd - waitStart });
    const stamps = this.#span("read back", () => {
      const stamps = new BigUint64Array(tsRead.getMappedRange().slice(0));
      tsRead.unmap();
      if (outputs) {
        outputs.getMappedRange().slice(0);
        outputs.unmap();
      }
      return stamps;
    });
    const wallUs = this.#now();
    const error = await device.popErrorScope();
    if (error) throw new Error(`profiling entry "${this.name}" failed on the device: ${error.message}`);
    return { ...this.#placeGpu(stamps, dispatchSteps, submitStart, waitEnd), host: this.#spans, wallUs };
  }

  /** Each step submitted alone and timed from submit to onSubmittedWorkDone. */
  async hostTimed(inputs: HostInputs): Promise<Timed> {
    const device = this.#device;
    const { steps } = this.view.plan;
    const outputs = this.#outputsBuffer();
    this.#t0 = performance.now();
    this.#span("write inputs", () => this.#writeInputs(inputs), { inputs: inputs.size });
    device.pushErrorScope("validation");
    const dispatches: ProfiledDispatch[] = [];
    const untimed: Timed["untimed"][number][] = [];
    const loopStart = this.#now();
    for (const [i, step] of steps.entries()) {
      const start = this.#now();
      const encoder = device.createCommandEncoder({ label: `profile ${this.name} step ${i}` });
      this.#encodeStep(encoder, step, (label) => encoder.beginComputePass({ label }));
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      if (step.kind === "dispatch") {
        dispatches.push(this.#dispatch(i, step.kernel, start, this.#now() - start));
      } else untimed.push({ name: step.kind, step: i, atUs: start });
    }
    const loopEnd = this.#now();
    this.#spans.push({
      name: "encode + submit + wait, per step (host-timed)",
      startUs: loopStart,
      durUs: loopEnd - loopStart,
      args: { steps: steps.length },
    });
    if (outputs) {
      const encoder = device.createCommandEncoder({ label: `profile ${this.name} outputs` });
      this.#copyOutputs(encoder, outputs);
      device.queue.submit([encoder.finish()]);
      const waitStart = this.#now();
      await outputs.mapAsync(GPUMapMode.READ);
      this.#spans.push({ name: "wait for results", startUs: waitStart, durUs: this.#now() - waitStart });
      this.#span("read back", () => {
        outputs.getMappedRange().slice(0);
        outputs.unmap();
      });
    }
    const wallUs = this.#now();
    const error = await device.popErrorScope();
    if (error) throw new Error(`profiling entry "${this.name}" failed on the device: ${error.message}`);
    return { dispatches, untimed, host: this.#spans, wallUs };
  }

  /**
   * Dispatch slices from the timestamps. The GPU clock is not the host's: the lane is placed to end
   * when the host's wait ended, or to start at the submit if that is later. Ends the spec lets come
   * out before their beginnings (quantization) are clamped so slices stay in order on the lane.
   */
  #placeGpu(stamps: BigUint64Array, dispatchSteps: readonly number[], submitUs: number, waitEndUs: number) {
    let origin = stamps[0] ?? 0n;
    for (const s of stamps) if (s < origin) origin = s;
    const rel = (i: number) => ticksToMicros(stamps[i]!, origin, this.tickNs);
    const spanUs = dispatchSteps.length ? Math.max(...dispatchSteps.map((_, d) => rel(2 * d + 1))) : 0;
    const offset = Math.max(submitUs, waitEndUs - spanUs);
    const dispatches: ProfiledDispatch[] = [];
    let prevEnd = 0;
    for (const [d, i] of dispatchSteps.entries()) {
      const step = this.view.plan.steps[i]!;
      if (step.kind !== "dispatch") continue;
      const begin = Math.max(rel(2 * d), prevEnd);
      const end = Math.max(rel(2 * d + 1), begin);
      dispatches.push(this.#dispatch(i, step.kernel, offset + begin, end - begin));
      prevEnd = end;
    }
    // A clear or copy falls after the dispatch before it (or at the lane's start).
    const untimed = this.view.plan.steps.flatMap((s, i) => {
      if (s.kind === "dispatch") return [];
      const before = dispatches.filter((d) => d.step < i).at(-1);
      return [{ name: s.kind, step: i, atUs: before ? before.startUs + before.durUs : offset }];
    });
    return { dispatches, untimed };
  }

  #dispatch(step: number, kernel: number, startUs: number, durUs: number): ProfiledDispatch {
    const k = this.view.kernels[kernel]!.kernel;
    return { step, kernel, name: k.name, ops: k.ops, workgroups: k.dispatch, startUs, durUs };
  }

  #encodeSteps(encoder: GPUCommandEncoder, pass: (label: string) => GPUComputePassEncoder) {
    for (const step of this.view.plan.steps) this.#encodeStep(encoder, step, pass);
  }

  /** One step as `Executor.run` records it, a dispatch in a pass of its own. */
  #encodeStep(
    encoder: GPUCommandEncoder,
    step: EntryView["plan"]["steps"][number],
    pass: (label: string) => GPUComputePassEncoder,
  ) {
    if (step.kind === "dispatch") {
      const k = this.view.kernels[step.kernel]!;
      const p = pass(k.kernel.name);
      p.setPipeline(k.pipeline);
      p.setBindGroup(0, k.bindGroup);
      p.dispatchWorkgroups(...k.kernel.dispatch);
      p.end();
    } else if (step.kind === "clear") {
      encoder.clearBuffer(this.#gpuBuffer(step.buffer), step.offset * 4, step.words * 4);
    } else if (step.words > 0) {
      encoder.copyBufferToBuffer(
        this.#gpuBuffer(step.from.buffer),
        step.from.offset * 4,
        this.#gpuBuffer(step.buffer),
        step.offset * 4,
        step.words * 4,
      );
    }
  }

  #writeInputs(inputs: HostInputs) {
    for (const [slot, data] of inputs) {
      if (data.length > 0) {
        this.#device.queue.writeBuffer(this.#gpuBuffer(slot.buffer), slot.offset * 4, data);
      }
    }
  }

  /** A readback buffer for the entry's outputs, as `run` reads them (undefined: none). */
  #outputsBuffer(): GPUBuffer | undefined {
    const bytes = this.view.plan.outputs.reduce((s, o) => s + slotWords(o) * 4, 0);
    return bytes > 0
      ? this.#buffer("outputs", bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST)
      : undefined;
  }

  #copyOutputs(encoder: GPUCommandEncoder, into: GPUBuffer | undefined) {
    if (!into) return;
    let at = 0;
    for (const slot of this.view.plan.outputs) {
      const bytes = slotWords(slot) * 4;
      if (bytes > 0) {
        encoder.copyBufferToBuffer(this.#gpuBuffer(slot.buffer), slot.offset * 4, into, at, bytes);
      }
      at += bytes;
    }
  }

  #gpuBuffer(name: string): GPUBuffer {
    const b = this.view.buffers.get(name);
    if (!b) throw new Error(`entry "${this.name}" uses buffer "${name}", which the plan lacks`);
    return b;
  }

  #buffer(label: string, size: number, usage: number): GPUBuffer {
    return this.#own(this.#device.createBuffer({ label: `profile ${label}`, size, usage }));
  }

  #own<T extends { destroy(): void }>(o: T): T {
    this.#created.push(o);
    return o;
  }

  #now(): number {
    return (performance.now() - this.#t0) * 1000;
  }

  /** Runs `work` as a host span. */
  #span<T>(name: string, work: () => T, args?: Record<string, unknown>): T {
    const start = this.#now();
    const result = work();
    this.#spans.push({ name, startUs: start, durUs: this.#now() - start, ...(args ? { args } : {}) });
    return result;
  }
}
