/**
 * `deno task explain <spec.ts> [--json] [--batch N] [--dim name=N]... [--set key=value]... [--adapter cpu|gpu]`
 * Compiles a spec and prints its plan: each kernel with what it computes, its buffers, FLOPs and
 * bytes, then the totals per entry point. `--json` prints a summary for tools.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import type { Plan } from "../compiler/plan.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";

export interface PlanSummary {
  kernels: number;
  dispatches_per_step: number;
  buffer_bytes: number;
  peak_bytes: number;
  flops_per_step: number;
  bytes_per_step: number;
  entries: Record<string, { dispatches: number; peak_bytes: number; flops: number }>;
}

/** Totals for tools; "per step" means one `trainStep` (or the first entry when there is none). */
export function summarize(plan: Plan): PlanSummary {
  const main = plan.entries.trainStep ?? Object.values(plan.entries)[0]!;
  const dispatches = (e: typeof main) => e.steps.filter((s) => s.kind === "dispatch").length;
  const kernelsOf = (e: typeof main) =>
    e.steps.flatMap((s) => (s.kind === "dispatch" ? [plan.kernels[s.kernel]!] : []));
  return {
    kernels: plan.kernels.length,
    dispatches_per_step: dispatches(main),
    buffer_bytes: plan.buffers.reduce((s, b) => s + b.bytes, 0),
    peak_bytes: main.peakBytes,
    flops_per_step: main.flops,
    bytes_per_step: kernelsOf(main).reduce((s, k) => s + k.bytes, 0),
    entries: Object.fromEntries(
      Object.entries(plan.entries).map((
        [name, e],
      ) => [name, { dispatches: dispatches(e), peak_bytes: e.peakBytes, flops: e.flops }]),
    ),
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

/** The plan as text for a person. */
export function explainText(plan: Plan): string {
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
      `entry ${name}: ${entry.steps.length} steps, peak act ${fmtNum(entry.peakBytes)}B, ${
        fmtNum(entry.flops)
      }FLOP`,
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
      if (step.kind !== "dispatch") {
        lines.push(`  clear ${step.buffer}[${step.offset}..+${step.words}]`);
        continue;
      }
      const k = plan.kernels[step.kernel]!;
      const io = k.bindings.map((b) => `${b.buffer}${b.access === "read" ? "(r)" : "(rw)"}`).join(" ");
      lines.push(
        `  ${k.name.padEnd(22)} ${fmtNum(k.flops).padStart(7)}FLOP ${
          fmtNum(k.bytes).padStart(7)
        }B  [${io}]  ops: ${k.ops.join(",")}`,
      );
      lines.push(`      ${k.doc}`);
    }
  }
  const s = summarize(plan);
  lines.push(
    "",
    `summary: ${s.kernels} kernels, ${s.dispatches_per_step} dispatches per step, buffers ${
      fmtNum(s.buffer_bytes)
    }B, ` +
      `peak act ${fmtNum(s.peak_bytes)}B, ${fmtNum(s.flops_per_step)}FLOP per step`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        batch: { type: "string" },
        dim: { type: "string", multiple: true, default: [] },
        set: { type: "string", multiple: true, default: [] },
        adapter: { type: "string", default: "cpu" },
      },
    });
    const path = positionals[0];
    if (!path) {
      throw new UsageError("usage: deno task explain <spec.ts> [--json] [--batch N] [--set key=value]");
    }
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
    const plan = compile(model, { config: parseOverrides(values.set), dims, adapterClass: values.adapter });
    console.log(values.json ? JSON.stringify(summarize(plan)) : explainText(plan));
  });
}
