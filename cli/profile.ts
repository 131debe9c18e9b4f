/**
 * `deno task profile <spec.ts> [--entry trainStep] [--out trace.json] [--set key=value]... [--dim name=N]...
 *    [--warmup N] [--host-timed]`
 *
 * Profiles one step of an entry (default trainStep) of the plan `deno task train` would build, on
 * this machine's WebGPU device, after `--warmup` runs (default 2), and writes a Chrome / Perfetto
 * trace (open it in ui.perfetto.dev or chrome://tracing): a lane with the step's wall time, a host
 * lane (input writes, encoding, submit, the wait for results) and a GPU lane with each dispatch as a
 * slice named by its kernel, its member ops in the args. GPU times come from timestamp queries where
 * the adapter has "timestamp-query" (one compute pass per dispatch); elsewhere, or with
 * `--host-timed`, each dispatch is submitted alone and timed on the host, which the trace says.
 * Prints the step's totals and the kernels with the most GPU time beside their roofline bounds. The
 * trace goes to `--out`, default runs/traces/<model>_<entry>.json.
 */
import { openDevice } from "../runtime/mod.ts";
import { type Profile, toTrace } from "../runtime/profile/mod.ts";
import { kernelTimes } from "../runtime/profile/measure.ts";
import { TrainError } from "../runtime/train/settings.ts";
import type { Plan } from "../compiler/plan.ts";
import { measuredEntry, measuredText, PEAKS } from "./explain.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";
import { profilePlan, stepInputs, trainingPlan } from "./_profile_run.ts";

export const PROFILE = command({
  name: "profile",
  args: "<spec.ts>",
  summary: "Profiles one step of an entry of the plan `deno task train` would build, on this machine's " +
    "WebGPU device, and writes a Chrome / Perfetto trace (host and GPU lanes, one slice per dispatch).",
  flags: {
    entry: { type: "string", value: "NAME", default: "trainStep", help: "the entry to profile" },
    out: {
      type: "string",
      value: "FILE",
      help: "the trace file",
      defaultText: "runs/traces/<model>_<entry>.json",
    },
    ...SPEC_FLAGS,
    warmup: { type: "string", value: "N", default: "2", help: "runs before the profiled one" },
    "host-timed": {
      type: "boolean",
      default: false,
      help: "time each dispatch alone on the host, not with timestamp queries",
    },
  },
  examples: ["deno task profile examples/transfusion_demo.ts --out trace.json"],
});

const USAGE = usageLine(PROFILE);

async function main(): Promise<void> {
  const { values, positionals } = flags();
  const path = positionals[0];
  if (!path || positionals.length > 1) throw new UsageError(USAGE);
  const warmup = Number(values.warmup);
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new UsageError(`--warmup expects an integer >= 0, got "${values.warmup}"`);
  }
  const dims: Record<string, number> = {};
  for (const [k, v] of Object.entries(parseOverrides(values.dim))) {
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new UsageError(`--dim ${k} must be a positive integer, got ${v}`);
    }
    dims[k] = v as number;
  }
  const model = await loadSpec(path);
  const entry = values.entry;
  const known = ["trainStep", "forward", ...Object.keys(model.entries ?? {})];
  if (!known.includes(entry)) {
    throw new UsageError(`--entry ${entry}: ${path} has the entries ${known.join(", ")}`);
  }

  const handle = await openDevice();
  let plan: Plan;
  try {
    plan = trainingPlan(model, handle, { entry, config: parseOverrides(values.set), dims });
  } catch (e) {
    if (e instanceof TrainError) throw new UsageError(e.message);
    throw e;
  }
  const { inputs, source } = stepInputs(model, plan, entry);
  const [profile] = await profilePlan(plan, entry, inputs, {
    warmup,
    handle,
    lr: model.training?.lr ?? 1e-4,
    ...(values["host-timed"] ? { timing: "host" as const } : {}),
  });
  const trace = toTrace(profile!);
  // Under runs/, which fmt and lint skip, like training runs.
  const out = values.out ?? `runs/traces/${model.name}_${entry}.json`;
  const dir = out.slice(0, out.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(trace) + "\n");
  console.log(summaryText(profile!, plan, source).join("\n"));
  console.log(
    `wrote ${out} (${trace.traceEvents.length} events): open it in ui.perfetto.dev or chrome://tracing`,
  );
}

/** The step's totals, its host spans, and the top kernels by GPU time beside their bounds. */
export function summaryText(p: Profile, plan: Plan, inputs: string, top = 5): string[] {
  const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`;
  const m = measuredEntry(plan, p.entry, PEAKS.cpu, kernelTimes(p), { timing: p.timing, steps: 1 });
  return [
    `profiled ${p.model} ${p.entry} on ${p.adapter} (${p.timing}), dims ${
      JSON.stringify(p.dims)
    }; inputs: ${inputs}`,
    `  step wall ${ms(p.wallUs)}` +
    (p.plainStepUs === undefined ? "" : ` (a plain run, one pass: ${ms(p.plainStepUs)})`) +
    `; GPU kernel time ${ms(p.kernelUs)} over ${p.dispatches.length} dispatches; ` +
    `host gap (wall - kernel time) ${ms(p.wallUs - p.kernelUs)}`,
    `  host: ${p.host.map((h) => `${h.name} ${ms(h.durUs)}`).join(", ")}`,
    ...measuredText(m, PEAKS.cpu, top),
  ];
}

/** The flags; a malformed command line is a usage error. */
function flags() {
  return parseCommand(PROFILE, Deno.args);
}

if (import.meta.main) await runCli(main);
