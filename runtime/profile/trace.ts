/**
 * A profiled step as a Chrome / Perfetto trace (chrome://tracing, ui.perfetto.dev): the Trace Event
 * Format's JSON object form, `{"traceEvents": [...]}`, with "X" (complete) events for slices, "i"
 * (instant) events for work that has no time of its own, and "M" (metadata) events naming the
 * process and its lanes. Times are microseconds from the start of the step.
 */
import type { Profile } from "./profile.ts";

export interface TraceEvent {
  readonly name: string;
  /** "X" complete slice, "i" instant, "M" metadata. */
  readonly ph: "X" | "i" | "M";
  readonly pid: number;
  readonly tid: number;
  /** Microseconds. */
  readonly ts: number;
  readonly dur?: number;
  readonly cat?: string;
  /** Instant events: "t", drawn on their lane only. */
  readonly s?: "t";
  readonly args?: Readonly<Record<string, unknown>>;
}

export interface Trace {
  readonly traceEvents: readonly TraceEvent[];
  readonly displayTimeUnit: "ms";
  /** How the step was timed and what the figures mean (the format's free-form metadata). */
  readonly otherData: Readonly<Record<string, unknown>>;
}

/** The lanes (thread ids) of the one process: the whole step, the host's work, the GPU's. */
export const LANES = { step: 1, host: 2, gpu: 3 } as const;
const PID = 1;

/**
 * Converts timestamp-query values to microseconds from `origin`. WebGPU defines them as nanoseconds
 * (`tickNs` 1); an implementation that passes raw ticks through (wgpu without timestamp
 * normalization, on a GPU whose counter is not 1 ns) needs the tick length. A value below `origin`
 * (the counter was reset or the two ends were quantized apart, which the spec allows) gives 0.
 */
export function ticksToMicros(value: bigint, origin: bigint, tickNs = 1): number {
  if (!(tickNs > 0) || !Number.isFinite(tickNs)) throw new Error(`tickNs must be positive, got ${tickNs}`);
  const ticks = value > origin ? value - origin : 0n;
  return (Number(ticks) * tickNs) / 1000;
}

const ns = (us: number) => Math.round(us * 1000) / 1000;

/** The profile as trace events: metadata first, then each lane's slices in time order. */
export function toTrace(p: Profile): Trace {
  const gpuLane = p.timing === "timestamp-query"
    ? "GPU (timestamp-query: one compute pass per dispatch)"
    : "GPU (HOST-TIMED: no timestamp-query; submit + onSubmittedWorkDone per dispatch)";
  const meta = (name: string, tid: number, args: Record<string, unknown>): TraceEvent => ({
    name,
    ph: "M",
    pid: PID,
    tid,
    ts: 0,
    args,
  });
  const metadata: TraceEvent[] = [
    meta("process_name", 0, { name: `${p.model} ${p.entry} on ${p.adapter}` }),
    meta("thread_name", LANES.step, { name: "step (wall)" }),
    meta("thread_name", LANES.host, { name: "host" }),
    meta("thread_name", LANES.gpu, { name: gpuLane }),
    ...Object.values(LANES).map((tid) => meta("thread_sort_index", tid, { sort_index: tid })),
  ];
  const slices: TraceEvent[] = [
    {
      name: `${p.entry} step`,
      ph: "X",
      pid: PID,
      tid: LANES.step,
      ts: 0,
      dur: p.wallUs,
      cat: "step",
      args: { kernelUs: p.kernelUs, hostGapUs: p.wallUs - p.kernelUs, dispatches: p.dispatches.length },
    },
    ...p.host.map((h): TraceEvent => ({
      name: h.name,
      ph: "X",
      pid: PID,
      tid: LANES.host,
      ts: h.startUs,
      dur: h.durUs,
      cat: "host",
      ...(h.args ? { args: h.args } : {}),
    })),
    ...p.dispatches.map((d): TraceEvent => ({
      name: d.name,
      ph: "X",
      pid: PID,
      tid: LANES.gpu,
      ts: d.startUs,
      dur: d.durUs,
      cat: "dispatch",
      args: { step: d.step, kernel: d.kernel, ops: d.ops, workgroups: d.workgroups },
    })),
    ...p.untimed.map((u): TraceEvent => ({
      name: u.name,
      ph: "i",
      pid: PID,
      tid: LANES.gpu,
      ts: u.atUs,
      s: "t",
      cat: "untimed",
      args: { step: u.step, note: "encoder-level work between passes; no timestamp of its own" },
    })),
  ];
  slices.sort((a, b) => a.tid - b.tid || a.ts - b.ts);
  // Nanosecond resolution is all the clocks give; fewer digits keep the file small.
  const rounded = slices.map((e) => ({
    ...e,
    ts: ns(e.ts),
    ...(e.dur === undefined ? {} : { dur: ns(e.dur) }),
  }));
  return {
    traceEvents: [...metadata, ...rounded],
    displayTimeUnit: "ms",
    otherData: {
      model: p.model,
      entry: p.entry,
      adapter: p.adapter,
      dims: p.dims,
      timing: p.timing,
      timingNote: p.timing === "timestamp-query"
        ? "GPU slices are begin/end timestamps of one compute pass per dispatch; the GPU clock is " +
          "not the host's, so the GPU lane is placed to end when the host's wait for the results ends " +
          "(or to start at the submit, whichever is later)"
        : "the adapter has no timestamp-query: each dispatch was submitted alone and timed on the host " +
          "from submit to onSubmittedWorkDone, so GPU slices include submit and wake-up overhead",
      kernelUs: p.kernelUs,
      wallUs: p.wallUs,
      hostGapUs: p.wallUs - p.kernelUs,
      ...(p.plainStepUs === undefined ? {} : { plainStepUs: p.plainStepUs }),
      tickNs: p.tickNs,
    },
  };
}
