/**
 * `deno task explain <spec.ts> [--json] [--batch N] [--dim name=N]... [--set key=value]... [--adapter cpu|gpu]
 *   [--entry NAME]... [--peak cpu|h100] [--peak-gflops X] [--peak-gbs Y]`
 * Compiles a spec and prints its plan: each kernel with what it computes, its buffers, FLOPs, bytes
 * and a roofline bound, then the totals per entry point and the kernels that dominate the bound.
 * After the plan, the rule of each attention op's mask as spec code (cli/explain_masks.ts; in
 * `--json` as `attention_masks` when the spec has attention ops).
 * `--json` prints a summary for tools. `--entry` picks the entry points (default trainStep and forward;
 * e.g. `--entry decode` for a Transfusion spec's cached decoding step).
 * `--measure [--measure-steps N]` also runs each entry on this machine's WebGPU device and prints
 * each kernel's measured GPU time (timestamp queries, else host-timed; median of N profiled steps,
 * default 3, after two warm-up runs) beside its bound, and the totals.
 */
import { compile } from "../compiler/mod.ts";
import type { Plan } from "../compiler/plan.ts";
import { medianKernelTimes } from "../runtime/profile/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";
import { profilePlan, stepInputs } from "./_profile_run.ts";
import { attentionMasks, attentionMasksText } from "./explain_masks.ts";

/** An adapter's peak rates, the roof of the roofline model. */
export interface Peak {
  readonly name: string;
  readonly gflops: number;
  /** Memory bandwidth, GB/s (1e9 bytes per second). */
  readonly gbs: number;
}

/**
 * Stated peaks. cpu: this machine's lavapipe (2 AMD EPYC cores): ~16 GFLOP/s measured by the tuned
 * f32 matmul (bench/suites/matmul.ts); bandwidth measured at 0.6 GB/s by a one-pass copy kernel
 * over 8M words while the machine was shared (load ~7 on 2 cores), stated as 1 GB/s, an estimate
 * for it idle. h100: NVIDIA H100 SXM, f32 without tensor cores (WGSL has no matrix units):
 * 67 TFLOP/s, HBM3 3.35 TB/s.
 */
export const PEAKS = {
  cpu: { name: "cpu (lavapipe, measured)", gflops: 16, gbs: 1 },
  h100: { name: "h100 (SXM, f32 peak)", gflops: 67000, gbs: 3350 },
} as const satisfies Record<string, Peak>;

/** One kernel under the roofline: time bound = max(compute time, memory time) at the peaks. */
export interface KernelBound {
  readonly name: string;
  /** The kernel's first op (its kind in `explain`'s grouping: matmul, sum, flash_attention, ...). */
  readonly op: string;
  readonly flops: number;
  readonly bytes: number;
  /** FLOP per byte moved. */
  readonly intensity: number;
  readonly boundMs: number;
  readonly limit: "compute" | "memory";
}

export interface Roofline {
  readonly peak: Peak;
  /** Intensity where compute and memory time are equal: kernels below it are memory bound. */
  readonly ridge: number;
  /** One entry per dispatch of the entry point, in run order. */
  readonly kernels: readonly KernelBound[];
  readonly totalMs: number;
  readonly computeBoundMs: number;
  readonly memoryBoundMs: number;
}

export function kernelBound(
  k: { name: string; ops: readonly string[]; flops: number; bytes: number },
  peak: Peak,
): KernelBound {
  const flopMs = k.flops / (peak.gflops * 1e6);
  const byteMs = k.bytes / (peak.gbs * 1e6);
  return {
    name: k.name,
    op: k.ops[0] ?? "?",
    flops: k.flops,
    bytes: k.bytes,
    intensity: k.bytes > 0 ? k.flops / k.bytes : Infinity,
    boundMs: Math.max(flopMs, byteMs),
    limit: flopMs >= byteMs ? "compute" : "memory",
  };
}

/** The roofline of one entry point (default: trainStep, else the first entry). */
export function roofline(plan: Plan, peak: Peak, entry?: string): Roofline {
  const e = entry ? plan.entries[entry]! : plan.entries.trainStep ?? Object.values(plan.entries)[0]!;
  const kernels = e.steps.flatMap((
    s,
  ) => (s.kind === "dispatch" ? [kernelBound(plan.kernels[s.kernel]!, peak)] : []));
  const total = (limit?: "compute" | "memory") =>
    kernels.filter((k) => !limit || k.limit === limit).reduce((s, k) => s + k.boundMs, 0);
  return {
    peak,
    ridge: (peak.gflops * 1e9) / (peak.gbs * 1e9),
    kernels,
    totalMs: total(),
    computeBoundMs: total("compute"),
    memoryBoundMs: total("memory"),
  };
}

/** Bound time per kernel kind (first op), largest first. */
export function boundByOp(r: Roofline): [string, number][] {
  const by = new Map<string, number>();
  for (const k of r.kernels) by.set(k.op, (by.get(k.op) ?? 0) + k.boundMs);
  return [...by].sort((a, b) => b[1] - a[1]);
}

/** The `count` kernels with the largest bounds, largest first. */
export function dominant(r: Roofline, count: number): KernelBound[] {
  return [...r.kernels].sort((a, b) => b.boundMs - a.boundMs).slice(0, count);
}

export interface PlanSummary {
  kernels: number;
  dispatches_per_step: number;
  buffer_bytes: number;
  peak_bytes: number;
  /** Of `peak_bytes`, the f16 half arenas' share (2 bytes per element); only with f16 storage. */
  peak_half_bytes?: number;
  flops_per_step: number;
  bytes_per_step: number;
  entries: Record<
    string,
    { dispatches: number; peak_bytes: number; peak_half_bytes?: number; flops: number }
  >;
  roofline: { peak: string; peak_gflops: number; peak_gbs: number; bound_ms_per_step: number };
}

/** Totals for tools; "per step" means one `trainStep` (or the first entry when there is none). */
export function summarize(plan: Plan, peak: Peak = PEAKS.cpu): PlanSummary {
  const main = plan.entries.trainStep ?? Object.values(plan.entries)[0]!;
  const dispatches = (e: typeof main) => e.steps.filter((s) => s.kind === "dispatch").length;
  const kernelsOf = (e: typeof main) =>
    e.steps.flatMap((s) => (s.kind === "dispatch" ? [plan.kernels[s.kernel]!] : []));
  return {
    kernels: plan.kernels.length,
    dispatches_per_step: dispatches(main),
    buffer_bytes: plan.buffers.reduce((s, b) => s + b.bytes, 0),
    peak_bytes: main.peakBytes,
    ...(main.halfPeakBytes === undefined ? {} : { peak_half_bytes: main.halfPeakBytes }),
    flops_per_step: main.flops,
    bytes_per_step: kernelsOf(main).reduce((s, k) => s + k.bytes, 0),
    entries: Object.fromEntries(
      Object.entries(plan.entries).map((
        [name, e],
      ) => [name, {
        dispatches: dispatches(e),
        peak_bytes: e.peakBytes,
        ...(e.halfPeakBytes === undefined ? {} : { peak_half_bytes: e.halfPeakBytes }),
        flops: e.flops,
      }]),
    ),
    roofline: {
      peak: peak.name,
      peak_gflops: peak.gflops,
      peak_gbs: peak.gbs,
      bound_ms_per_step: roofline(plan, peak).totalMs,
    },
  };
}

const fmtNum = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}G`
    : n >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : n >= 1e3
    ? `${(n / 1e3).toFixed(1)}k`
    : `${n}`;

/** Peak activation bytes; with f16 storage split by arena kind (f32 words, f16 halves). */
const peakText = (total: number, half: number | undefined) =>
  half === undefined
    ? `${fmtNum(total)}B`
    : `${fmtNum(total)}B (act f32 ${fmtNum(total - half)}B + half f16 ${fmtNum(half)}B)`;

/** The plan as text for a person. */
export function explainText(plan: Plan, peak: Peak = PEAKS.cpu): string {
  const lines: string[] = [`plan for ${plan.model}  dims ${JSON.stringify(plan.dims)}`, ""];
  lines.push("buffers:");
  for (const b of plan.buffers) lines.push(`  ${b.name.padEnd(11)} ${b.role.padEnd(10)} ${fmtNum(b.bytes)}B`);
  lines.push(
    `parameters: ${plan.params.length} tensors, ${
      fmtNum(plan.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0))
    } values`,
  );
  for (const [name, entry] of Object.entries(plan.entries)) {
    lines.push(
      "",
      `entry ${name}: ${entry.steps.length} steps, peak act ${
        peakText(entry.peakBytes, entry.halfPeakBytes)
      }, ${fmtNum(entry.flops)}FLOP`,
    );
    lines.push(
      `  inputs:  ${
        entry.inputs.map((s) => `${s.name} ${s.dtype}[${s.shape.join(", ")}]`).join(", ") || "none"
      }`,
    );
    lines.push(
      `  outputs: ${entry.outputs.map((s) => `${s.name} ${s.dtype}[${s.shape.join(", ")}]`).join(", ")}`,
    );
    for (const step of entry.steps) {
      if (step.kind === "clear") {
        lines.push(`  clear ${step.buffer}[${step.offset}..+${step.words}]`);
        continue;
      }
      if (step.kind === "copy") {
        const from = `${step.from.buffer}[${step.from.offset}..+${step.words}]`;
        lines.push(`  copy  ${from} -> ${step.buffer}[${step.offset}..+${step.words}]`);
        continue;
      }
      const k = plan.kernels[step.kernel]!;
      const io = k.bindings.map((b) => `${b.buffer}${b.access === "read" ? "(r)" : "(rw)"}`).join(" ");
      const b = kernelBound(k, peak);
      lines.push(
        `  ${k.name.padEnd(22)} ${fmtNum(k.flops).padStart(7)}FLOP ${fmtNum(k.bytes).padStart(7)}B ` +
          `AI ${b.intensity.toFixed(2).padStart(6)} bound ${fmtMs(b.boundMs).padStart(8)} ${
            b.limit.padEnd(7)
          } ` +
          `[${io}]  ops: ${opsText(k.ops)}`,
      );
      lines.push(`      ${k.doc}`);
    }
  }
  lines.push("", ...rooflineText(roofline(plan, peak)));
  const s = summarize(plan, peak);
  lines.push(
    "",
    `summary: ${s.kernels} kernels, ${s.dispatches_per_step} dispatches per step, buffers ${
      fmtNum(s.buffer_bytes)
    }B, ` +
      `peak act ${peakText(s.peak_bytes, s.peak_half_bytes)}, ${fmtNum(s.flops_per_step)}FLOP per step`,
  );
  return lines.join("\n");
}

/** The most member ops listed one by one; a longer list is shown as counts. */
const OPS_LISTED = 16;

/**
 * A kernel's member ops: as they are when few, else each op once with its count, in order of first
 * appearance (a RoPE table recomputed inside a concat is ~200 ops of ten kinds).
 */
export function opsText(ops: readonly string[]): string {
  if (ops.length <= OPS_LISTED) return ops.join(",");
  const counts = new Map<string, number>();
  for (const op of ops) counts.set(op, (counts.get(op) ?? 0) + 1);
  const kinds = [...counts].map(([op, n]) => (n > 1 ? `${op}x${n}` : op));
  return `${ops.length} ops: ${kinds.join(",")}`;
}

const fmtMs = (ms: number) => (ms >= 1 ? `${ms.toFixed(2)}ms` : `${(ms * 1000).toFixed(1)}us`);

/** The roofline summary: the peaks, the total bound per step and the kernels that dominate it. */
export function rooflineText(r: Roofline, top = 8): string[] {
  const share = (ms: number) => `${((100 * ms) / (r.totalMs || 1)).toFixed(1)}%`;
  return [
    `roofline at ${r.peak.name}: ${r.peak.gflops} GFLOP/s, ${r.peak.gbs} GB/s, ridge ${
      r.ridge.toFixed(1)
    } FLOP/B`,
    `  bound per step ${fmtMs(r.totalMs)} over ${r.kernels.length} dispatches: compute-bound kernels ` +
    `${fmtMs(r.computeBoundMs)} (${share(r.computeBoundMs)}), memory-bound ${fmtMs(r.memoryBoundMs)} ` +
    `(${share(r.memoryBoundMs)})`,
    `  by kind: ${boundByOp(r).slice(0, 6).map(([op, ms]) => `${op} ${share(ms)}`).join(", ")}`,
    `  dominant kernels:`,
    ...dominant(r, top).map((k) =>
      `    ${k.name.padEnd(24)} ${fmtMs(k.boundMs).padStart(8)} ${share(k.boundMs).padStart(6)}  ` +
      `AI ${k.intensity.toFixed(2)} (${k.limit})`
    ),
  ];
}

/** One plan kernel measured against its roofline bound, over all its dispatches in an entry step. */
export interface MeasuredKernel {
  readonly kernel: number;
  readonly name: string;
  readonly dispatches: number;
  readonly boundMs: number;
  /** Median over the profiled steps of the kernel's GPU time, summed over its dispatches. */
  readonly measuredMs: number;
}

export interface MeasuredEntry {
  readonly entry: string;
  readonly timing: string;
  readonly steps: number;
  /** Largest measured time first. */
  readonly kernels: readonly MeasuredKernel[];
  readonly totalBoundMs: number;
  readonly totalMeasuredMs: number;
}

/**
 * Measured (microseconds per kernel index, from runtime/profile medianKernelTimes) beside the
 * bound, per kernel index of `entry`; a kernel dispatched twice is bounded and measured twice.
 */
export function measuredEntry(
  plan: Plan,
  entry: string,
  peak: Peak,
  measuredUs: ReadonlyMap<number, number>,
  about: { timing: string; steps: number },
): MeasuredEntry {
  const e = plan.entries[entry];
  if (!e) throw new Error(`plan "${plan.model}" has no entry "${entry}"`);
  const count = new Map<number, number>();
  for (const s of e.steps) if (s.kind === "dispatch") count.set(s.kernel, (count.get(s.kernel) ?? 0) + 1);
  const kernels = [...count].map(([kernel, dispatches]): MeasuredKernel => {
    const us = measuredUs.get(kernel);
    if (us === undefined) throw new Error(`no measured time for kernel ${kernel} of entry "${entry}"`);
    const k = plan.kernels[kernel]!;
    return {
      kernel,
      name: k.name,
      dispatches,
      boundMs: dispatches * kernelBound(k, peak).boundMs,
      measuredMs: us / 1000,
    };
  }).sort((a, b) => b.measuredMs - a.measuredMs);
  return {
    entry,
    ...about,
    kernels,
    totalBoundMs: kernels.reduce((s, k) => s + k.boundMs, 0),
    totalMeasuredMs: kernels.reduce((s, k) => s + k.measuredMs, 0),
  };
}

/** The measured column: each kernel's measured time beside its bound, largest measured first. */
export function measuredText(m: MeasuredEntry, peak: Peak, top = Infinity): string[] {
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(1)}x` : "-");
  const shown = m.kernels.slice(0, top);
  return [
    `measured ${m.entry} (${m.timing}, median of ${m.steps} profiled step${m.steps > 1 ? "s" : ""}) ` +
    `vs bound at ${peak.name}:`,
    `  ${"kernel".padEnd(24)} ${"n".padStart(3)} ${"bound".padStart(9)} ${"measured".padStart(9)} ${
      "meas/bound".padStart(10)
    }`,
    ...shown.map((k) =>
      `  ${k.name.padEnd(24)} ${String(k.dispatches).padStart(3)} ${fmtMs(k.boundMs).padStart(9)} ` +
      `${fmtMs(k.measuredMs).padStart(9)} ${ratio(k.measuredMs, k.boundMs).padStart(10)}`
    ),
    ...(shown.length < m.kernels.length ? [`  ... ${m.kernels.length - shown.length} more kernels`] : []),
    `  total: measured ${fmtMs(m.totalMeasuredMs)} vs bound ${fmtMs(m.totalBoundMs)} ` +
    `(${ratio(m.totalMeasuredMs, m.totalBoundMs)}) over ${m.kernels.length} kernels`,
  ];
}

/** The peak from `--peak` and the `--peak-gflops` / `--peak-gbs` overrides. */
export function peakFrom(name: string, gflops?: string, gbs?: string): Peak {
  if (!(name in PEAKS)) {
    throw new UsageError(`--peak must be one of ${Object.keys(PEAKS).join(", ")}, got ${name}`);
  }
  const base: Peak = PEAKS[name as keyof typeof PEAKS];
  const rate = (flag: string, v: string | undefined, fallback: number) => {
    if (v === undefined) return fallback;
    const x = Number(v);
    if (!(x > 0)) throw new UsageError(`${flag} must be a positive number, got ${v}`);
    return x;
  };
  const custom = gflops !== undefined || gbs !== undefined;
  return {
    name: custom ? `${base.name.split(" ")[0]} with stated peaks` : base.name,
    gflops: rate("--peak-gflops", gflops, base.gflops),
    gbs: rate("--peak-gbs", gbs, base.gbs),
  };
}

export const EXPLAIN = command({
  name: "explain",
  args: "<spec.ts>",
  summary: "Compiles a spec and prints its plan for a person: each kernel with its ops, buffers, " +
    "memory, and a roofline bound per kernel; with --measure also the measured times.",
  flags: {
    json: { type: "boolean", default: false, help: "print a summary for tools (one JSON object)" },
    batch: { type: "string", value: "N", help: "the batch dim", defaultText: "the spec's" },
    ...SPEC_FLAGS,
    adapter: {
      type: "string",
      value: "cpu|gpu",
      default: "cpu",
      help: "the adapter class kernels are chosen for",
    },
    peak: {
      type: "string",
      value: "cpu|h100",
      help: "the machine of the roofline",
      defaultText: "cpu for --adapter cpu, h100 for gpu",
    },
    "peak-gflops": { type: "string", value: "X", help: "override the peak compute rate (GFLOP/s)" },
    "peak-gbs": { type: "string", value: "Y", help: "override the peak memory bandwidth (GB/s)" },
    entry: {
      type: "string",
      value: "NAME",
      multiple: true,
      default: [],
      help: "an entry to compile (e.g. decode)",
      defaultText: "trainStep and forward",
    },
    measure: { type: "boolean", default: false, help: "also run each entry on this machine's WebGPU device" },
    "measure-steps": { type: "string", value: "N", default: "3", help: "steps measured with --measure" },
  },
  examples: [
    "deno task explain examples/transfusion_demo.ts",
    "deno task explain examples/transfusion_demo.ts --entry decode --json",
  ],
});

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseCommand(EXPLAIN, Deno.args);
    const path = positionals[0];
    if (!path) throw new UsageError(usageLine(EXPLAIN));
    if (values.adapter !== "cpu" && values.adapter !== "gpu") {
      throw new UsageError(`--adapter must be cpu or gpu, got ${values.adapter}`);
    }
    const model = await loadSpec(path);
    const dims: Record<string, number> = {};
    for (const [k, v] of Object.entries(parseOverrides(values.dim))) {
      if (!Number.isInteger(v) || (v as number) <= 0) {
        throw new UsageError(`--dim ${k} must be a positive integer, got ${v}`);
      }
      dims[k] = v as number;
    }
    if (values.batch !== undefined) {
      const b = Number(values.batch);
      if (!Number.isInteger(b) || b <= 0) {
        throw new UsageError(`--batch must be a positive integer, got ${values.batch}`);
      }
      dims.batch = b;
    }
    // The roof defaults to the adapter class's: this machine's lavapipe for cpu, an H100 for gpu.
    const peak = peakFrom(
      values.peak ?? (values.adapter === "gpu" ? "h100" : "cpu"),
      values["peak-gflops"],
      values["peak-gbs"],
    );
    const known = ["trainStep", "forward", ...Object.keys(model.entries ?? {})];
    const unknown = values.entry.filter((e) => !known.includes(e));
    if (unknown.length) {
      throw new UsageError(`--entry ${unknown.join(", ")}: ${path} has the entries ${known.join(", ")}`);
    }
    const config = parseOverrides(values.set);
    const plan = compile(model, {
      config,
      dims,
      adapterClass: values.adapter,
      ...(values.entry.length ? { entries: values.entry } : {}),
    });
    const steps = Number(values["measure-steps"]);
    if (!Number.isInteger(steps) || steps < 1) {
      throw new UsageError(`--measure-steps must be a positive integer, got ${values["measure-steps"]}`);
    }
    const measured: MeasuredEntry[] = [];
    if (values.measure) {
      for (const entry of Object.keys(plan.entries)) {
        const { inputs } = stepInputs(model, plan, entry);
        const profiles = await profilePlan(plan, entry, inputs, { steps, lr: model.training?.lr ?? 1e-4 });
        const about = { timing: profiles[0]!.timing, steps };
        measured.push(measuredEntry(plan, entry, peak, medianKernelTimes(profiles), about));
      }
    }
    const masks = attentionMasks(model, { config, dims }, Object.keys(plan.entries));
    if (values.json) {
      const attention = masks.length ? { attention_masks: masks } : {};
      console.log(
        JSON.stringify({ ...summarize(plan, peak), ...attention, ...(values.measure ? { measured } : {}) }),
      );
    } else {
      const maskLines = attentionMasksText(masks);
      console.log(
        [
          explainText(plan, peak),
          ...(maskLines.length ? ["", ...maskLines] : []),
          ...measured.flatMap((m) => ["", ...measuredText(m, peak)]),
        ].join("\n"),
      );
    }
  });
}
