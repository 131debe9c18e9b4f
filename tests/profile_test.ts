/**
 * The profiler: timestamp conversion by hand, and the trace of one tiny train step on this
 * machine's WebGPU device, timed both ways (timestamp queries; host-timed, the fallback), checked
 * as the Trace Event Format wants it: every dispatch once with its kernel's name and ops,
 * non-negative durations, slices of a lane in order and not overlapping, lanes named.
 */
import assert from "node:assert/strict";
import tiny from "../examples/tiny.ts";
import { compile } from "../compiler/mod.ts";
import type { Plan } from "../compiler/plan.ts";
import { Executor, openDevice } from "../runtime/mod.ts";
import { trainingPlan } from "../cli/_profile_run.ts";
import {
  LANES,
  medianKernelTimes,
  type Profile,
  profileEntry,
  ticksToMicros,
  toTrace,
  type Trace,
  type TraceEvent,
} from "../runtime/profile/mod.ts";

Deno.test("ticksToMicros: nanosecond ticks, other tick lengths, values before the origin", () => {
  assert.equal(ticksToMicros(1_500n, 500n), 1);
  assert.equal(ticksToMicros(500n, 500n), 0);
  // An 83.333 ns tick (a 12 MHz counter): 12 ticks are 1 us.
  assert.ok(Math.abs(ticksToMicros(1012n, 1000n, 1000 / 12) - 1) < 1e-12);
  // A counter reset (or ends quantized apart) gives 0, never a negative time.
  assert.equal(ticksToMicros(10n, 20n), 0);
  // Absolute values near 2^63 keep nanosecond resolution: only the difference is converted.
  const big = 2n ** 63n;
  assert.equal(ticksToMicros(big + 2_001n, big), 2.001);
  assert.throws(() => ticksToMicros(1n, 0n, 0), /tickNs must be positive, got 0/);
});

Deno.test("medianKernelTimes: summed per kernel index, then the median over steps", () => {
  const profile = (durs: [number, number][]): Profile => ({
    model: "m",
    entry: "e",
    adapter: "a",
    dims: {},
    timing: "timestamp-query",
    tickNs: 1,
    dispatches: durs.map(([kernel, durUs], step) => ({
      step,
      kernel,
      name: `k${kernel}`,
      ops: [],
      workgroups: [1, 1, 1],
      startUs: 0,
      durUs,
    })),
    untimed: [],
    host: [],
    wallUs: 100,
    kernelUs: durs.reduce((s, [, d]) => s + d, 0),
  });
  // Kernel 0 runs twice a step: 1+2, 10+20, 4+5 -> median of 3, 30, 9 is 9; kernel 1: 7, 1, 3 -> 3.
  const m = medianKernelTimes([
    profile([[0, 1], [1, 7], [0, 2]]),
    profile([[0, 10], [1, 1], [0, 20]]),
    profile([[0, 4], [1, 3], [0, 5]]),
  ]);
  assert.deepEqual([...m].sort(), [[0, 9], [1, 3]]);
  // An even count takes the middle two's mean.
  assert.equal(medianKernelTimes([profile([[0, 1]]), profile([[0, 4]])]).get(0), 2.5);
  assert.throws(
    () => medianKernelTimes([profile([[0, 1]]), profile([[0, 1], [1, 1]])]),
    /cannot be combined/,
  );
});

const INPUTS = { x: [0.5, -1, 2, 0.25, 1, -0.5], y: [1, -1] };

function tinyPlan(): Plan {
  return compile(tiny, { entries: ["trainStep"] });
}

/** The Trace Event Format checks every trace must pass. */
function checkTrace(trace: Trace, plan: Plan, p: Profile): void {
  const parsed = JSON.parse(JSON.stringify(trace)) as Trace;
  assert.deepEqual(parsed, trace, "the trace survives JSON");
  const events = parsed.traceEvents;
  const meta = events.filter((e) => e.ph === "M");
  assert.ok(meta.some((e) => e.name === "process_name" && String(e.args?.name).includes("tiny trainStep")));
  for (const tid of Object.values(LANES)) {
    assert.ok(meta.some((e) => e.name === "thread_name" && e.tid === tid), `lane ${tid} is named`);
  }
  const slices = events.filter((e) => e.ph === "X");
  for (const e of slices) {
    assert.ok(e.dur !== undefined && e.dur >= 0, `${e.name}: duration ${e.dur}`);
    assert.ok(e.ts >= 0, `${e.name}: ts ${e.ts}`);
    // Everything happens within the step (1 us of rounding slack).
    assert.ok(
      e.ts + e.dur! <= p.wallUs + 1,
      `${e.name} ends at ${e.ts + e.dur!}, after the step (${p.wallUs})`,
    );
  }
  for (const tid of Object.values(LANES)) {
    const lane = slices.filter((e) => e.tid === tid);
    assert.ok(lane.length > 0, `lane ${tid} has slices`);
    for (let i = 1; i < lane.length; i++) {
      const [a, b] = [lane[i - 1]!, lane[i]!];
      assert.ok(b.ts >= a.ts, `lane ${tid}: ${b.name} at ${b.ts} before ${a.name} at ${a.ts}`);
      assert.ok(a.ts + a.dur! <= b.ts + 0.002, `lane ${tid}: ${a.name} overlaps ${b.name}`);
    }
  }
  // Every dispatch step of the entry once, named by its kernel, its ops in the args.
  const steps = plan.entries.trainStep!.steps;
  const dispatchSteps = steps.flatMap((s, i) => (s.kind === "dispatch" ? [{ i, kernel: s.kernel }] : []));
  const gpu: TraceEvent[] = slices.filter((e) => e.tid === LANES.gpu);
  assert.equal(gpu.length, dispatchSteps.length);
  for (const { i, kernel } of dispatchSteps) {
    const found = gpu.filter((e) => e.args?.step === i);
    assert.equal(found.length, 1, `dispatch step ${i} appears once`);
    const k = plan.kernels[kernel]!;
    assert.equal(found[0]!.name, k.name);
    assert.deepEqual(found[0]!.args?.ops, k.ops);
    assert.equal(found[0]!.args?.kernel, kernel);
  }
  const sum = gpu.reduce((s, e) => s + e.dur!, 0);
  assert.ok(
    Math.abs(sum - p.kernelUs) < 0.01 * gpu.length,
    `kernel time ${p.kernelUs} is the slices' sum ${sum}`,
  );
  assert.ok(p.kernelUs > 0 && p.kernelUs <= p.wallUs, `kernel time ${p.kernelUs} within wall ${p.wallUs}`);
  const host = slices.filter((e) => e.tid === LANES.host).map((e) => e.name);
  assert.ok(host.includes("write inputs") && host.includes("wait for results"), `host spans: ${host}`);
}

Deno.test("profile of a tiny train step with timestamp queries: a valid trace, the step really ran", async () => {
  const plan = tinyPlan();
  const ex = await Executor.create(plan, { lr: 0.05 });
  try {
    const device = ex.entryView("trainStep").device;
    assert.ok(device.features.has("timestamp-query"), "lavapipe offers timestamp-query");
    const p = await profileEntry(ex, "trainStep", INPUTS, { warmup: 1 });
    assert.equal(p.timing, "timestamp-query");
    const before = await ex.getParam("l1.w");
    const again = await profileEntry(ex, "trainStep", INPUTS, { warmup: 0 });
    // The profiled step is a real train step: it moved the parameters.
    assert.notDeepEqual(await ex.getParam("l1.w"), before);
    const trace = toTrace(again);
    checkTrace(trace, plan, again);
    assert.equal(trace.otherData.timing, "timestamp-query");
    assert.match(
      String(trace.traceEvents.find((e) => e.name === "thread_name" && e.tid === LANES.gpu)?.args?.name),
      /timestamp-query/,
    );
    assert.equal(p.plainStepUs, undefined, "one warm-up run is the first, not a plain step");
    const warm = await profileEntry(ex, "trainStep", INPUTS, { warmup: 2 });
    assert.ok(warm.plainStepUs! > 0);
  } finally {
    ex.destroy();
  }
});

Deno.test("a clear step between dispatches is an instant event where it falls, both ways", async () => {
  const plan = tinyPlan();
  const entry = plan.entries.trainStep!;
  // A harmless clear (gradients are written afresh by the backward kernels) after the first dispatch.
  const clear = { kind: "clear" as const, buffer: "grads", offset: 0, words: 4 };
  const withClear: Plan = {
    ...plan,
    entries: { trainStep: { ...entry, steps: [entry.steps[0]!, clear, ...entry.steps.slice(1)] } },
  };
  const ex = await Executor.create(withClear, { lr: 0.05 });
  try {
    for (const timing of ["timestamp-query", "host"] as const) {
      const p = await profileEntry(ex, "trainStep", INPUTS, { warmup: 1, timing });
      const trace = toTrace(p);
      checkTrace(trace, withClear, p);
      const instants = trace.traceEvents.filter((e) => e.ph === "i");
      assert.equal(instants.length, 1, timing);
      const [at, first] = [instants[0]!, p.dispatches[0]!];
      assert.deepEqual([at.name, at.tid, at.args?.step], ["clear", LANES.gpu, 1]);
      assert.ok(at.ts >= first.startUs + first.durUs - 0.002 && at.ts <= p.dispatches[1]!.startUs + 0.002);
    }
  } finally {
    ex.destroy();
  }
});

Deno.test("host-timed profile (the fallback without timestamp-query) is labelled and valid", async () => {
  const plan = tinyPlan();
  const ex = await Executor.create(plan, { lr: 0.05 });
  try {
    const p = await profileEntry(ex, "trainStep", INPUTS, { warmup: 1, timing: "host" });
    assert.equal(p.timing, "host");
    const trace = toTrace(p);
    checkTrace(trace, plan, p);
    assert.equal(trace.otherData.timing, "host");
    assert.match(String(trace.otherData.timingNote), /no timestamp-query/);
    assert.match(
      String(trace.traceEvents.find((e) => e.name === "thread_name" && e.tid === LANES.gpu)?.args?.name),
      /HOST-TIMED/,
    );
    await assert.rejects(() => profileEntry(ex, "sample", INPUTS), /no entry "sample"/);
  } finally {
    ex.destroy();
  }
});

Deno.test("deno task profile and explain --measure on the tiny spec", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/trace.json`;
    const run = async (args: string[]) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ...args],
        stderr: "piped",
        stdout: "piped",
      })
        .output();
      const text = new TextDecoder().decode(r.stdout);
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
      return text;
    };
    const printed = await run(["cli/profile.ts", "examples/tiny.ts", "--out", out, "--warmup", "1"]);
    assert.match(printed, /profiled tiny trainStep .*\(timestamp-query\)/);
    assert.match(printed, /GPU kernel time [\d.]+ ms over \d+ dispatches; host gap/);
    const trace = JSON.parse(await Deno.readTextFile(out)) as Trace;
    const gpu = trace.traceEvents.filter((e) => e.ph === "X" && e.tid === LANES.gpu);
    // The CLI profiles the plan `train` would build (the spec's optimizer settings).
    const plan = trainingPlan(tiny, await openDevice(), { entry: "trainStep", config: {}, dims: {} });
    const steps = plan.entries.trainStep!.steps.flatMap((s, i) => (s.kind === "dispatch" ? [i] : []));
    assert.deepEqual(gpu.map((e) => e.args?.step), steps);
    assert.deepEqual(
      gpu.map((e) => e.name),
      steps.map((i) => {
        const s = plan.entries.trainStep!.steps[i]!;
        return s.kind === "dispatch" ? plan.kernels[s.kernel]!.name : "";
      }),
    );

    for (
      const [args, message] of [
        [["--entry", "nope"], /error: --entry nope: examples\/tiny.ts has the entries trainStep, forward/],
        [["--warmup", "1.5"], /error: --warmup expects an integer >= 0, got "1.5"/],
        [["--dim", "batch=0"], /error: --dim batch must be a positive integer, got 0/],
      ] as const
    ) {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "cli/profile.ts", "examples/tiny.ts", ...args],
        stderr: "piped",
        stdout: "piped",
      }).output();
      assert.equal(r.code, 1, `${args}`);
      assert.match(new TextDecoder().decode(r.stderr), message);
    }

    const json = JSON.parse(
      await run([
        "cli/explain.ts",
        "examples/tiny.ts",
        "--json",
        "--entry",
        "forward",
        "--measure",
        "--measure-steps",
        "1",
      ]),
    );
    const m = json.measured[0];
    assert.equal(m.entry, "forward");
    assert.equal(m.timing, "timestamp-query");
    assert.equal(
      m.kernels.length,
      json.entries.forward.dispatches,
      "one row per kernel (each dispatched once)",
    );
    assert.ok(m.kernels.every((k: { measuredMs: number }) => k.measuredMs > 0));
    const sum = m.kernels.reduce((s: number, k: { measuredMs: number }) => s + k.measuredMs, 0);
    assert.ok(Math.abs(sum - m.totalMeasuredMs) < 1e-9);
    assert.ok(Math.abs(m.totalBoundMs - json.roofline.bound_ms_per_step) < 1e-9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
