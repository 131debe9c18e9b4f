/**
 * One lease of a lent GPU machine, in one command: a device session is about 15 minutes, start
 * included, so everything worth measuring there runs from this script, once, against a deadline,
 * and what it finds lands in `--out` (the device tool's $OUT). On the device machine:
 *
 *   source .gpu/env.sh && tar -C /tmp -xJf .gpu/deno_dir.tar.xz && export DENO_DIR=/tmp/deno_dir &&
 *     deno run -A bench/gpu_lease.ts --out "$OUT" --budget 545
 *
 * (`bench/gpu_prepare.sh` fills .gpu/ here first; see ARCHITECTURE.md "Running on a lent GPU".)
 * `--smoke --allow-cpu` rehearses the whole script on lavapipe. In order, each step with a time cap:
 * 1. adapter: find an environment under which WebGPU names the GPU, not llvmpipe (the shared notes
 *    list three to try); everything after runs under it.
 * 2. correctness: the kernel conformance tests (fused kernels and matmul variants against the
 *    interpreter), because a real GPU runs invocations concurrently where lavapipe does not.
 * 3. tune: the matmul variants of each training run's shapes, cached for this adapter.
 * 4. training (the point of the lease for issue 5): every run in RUNS at once, each for as many
 *    steps as fit before the deadline, measured by a 30-step probe first, so the lr schedule ends
 *    where the time does. A run still going at its deadline gets SIGINT, which saves a checkpoint.
 * 5. bench: `deno task bench --quick --json`, the t1 suite then matmul, in what time is left.
 * 6. pack: each run's checkpoint (no optimizer state) as tar parts under 15 MiB, because the tool
 *    returns at most 8 files of 16 MiB.
 */
import { parseArgs } from "node:util";

interface TrainRun {
  readonly name: string;
  readonly args: readonly string[];
  /** What `deno task tune` needs for the same matmul shapes (config and batch, no schedule). */
  readonly shapes: readonly string[];
}

const SPEC = "examples/transfusion_demo.ts";
/**
 * Two bets on captioning: a wider, deeper model from scratch with 4x the demo's batch, and the
 * shipped checkpoint fine-tuned further at that batch. lambda 2 as in the shipped fine-tune.
 */
const WIDE = [
  ...["--set", "backbone.dim=192", "--set", "backbone.depth=6", "--set", "backbone.hidden=576"],
  ...["--set", "backbone.heads=6", "--batch", "128"],
];
const RUNS: readonly TrainRun[] = [
  {
    name: "wide",
    args: [
      ...WIDE,
      ...[
        "--set",
        "loss.lambda=2",
        "--lr",
        "6e-4",
        "--warmup",
        "200",
        "--lr-floor",
        "3e-5",
        "--ema",
        "0.999",
      ],
    ],
    shapes: WIDE,
  },
  {
    name: "finetune",
    args: [
      ...["--init-from", "examples/checkpoints/transfusion_demo/checkpoint", "--set", "loss.lambda=2"],
      ...["--batch", "128", "--lr", "1e-4", "--warmup", "50", "--lr-floor", "1e-5", "--ema", "0.999"],
    ],
    // The shipped checkpoint's backbone (its run.json), which --init-from takes over.
    shapes: [
      ...["--set", "backbone.dim=128", "--set", "backbone.depth=4", "--set", "backbone.hidden=384"],
      ...["--batch", "128"],
    ],
  },
];

const CONFORMANCE_TESTS = [
  "tests/conformance_test.ts",
  "tests/matmul_test.ts",
  "tests/matmul_vector_test.ts",
  "tests/flash_attention_test.ts",
  "tests/fusion_test.ts",
  "tests/f16_storage_test.ts",
];

/** Environments to find the NVIDIA adapter under, from ../shared/gpu/README.md, in order. */
const ADAPTER_ENVS: readonly Record<string, string | undefined>[] = [
  {},
  { VK_DRIVER_FILES: undefined },
  { __EGL_VENDOR_LIBRARY_FILENAMES: "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json" },
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "gpu-out" },
    budget: { type: "string", default: "560" },
    "bench-s": { type: "string", default: "130" },
    "allow-cpu": { type: "boolean", default: false },
    "probe-steps": { type: "string", default: "30" },
    // A rehearsal on a CPU adapter: every run at batch 4 (the last --batch wins).
    smoke: { type: "boolean", default: false },
    // Another set of training runs: a JSON file holding [{ name, args, shapes }] like RUNS.
    runs: { type: "string" },
    // Steps to leave out of a short lease: any of conformance, tune, bench.
    skip: { type: "string", default: "" },
  },
});
const runs: readonly TrainRun[] = values.runs ? JSON.parse(await Deno.readTextFile(values.runs)) : RUNS;
const skipped = new Set(values.skip.split(",").filter((s) => s));
const smokeBatch = values.smoke ? ["--batch", "4"] : [];
const started = Date.now();
const deadline = started + Number(values.budget) * 1000;
const out = values.out;
const runsDir = "/tmp/lease-runs";
await Deno.mkdir(out, { recursive: true });
await Deno.mkdir(runsDir, { recursive: true });
const logFile = await Deno.open(`${out}/lease.log`, { create: true, append: true });
const encoder = new TextEncoder();

function log(line: string): void {
  const stamped = `[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`;
  console.log(stamped);
  logFile.writeSync(encoder.encode(stamped + "\n"));
}

const secondsLeft = () => (deadline - Date.now()) / 1000;

interface Finished {
  readonly code: number;
  readonly text: string;
  readonly timedOut: boolean;
}

/**
 * Runs deno with `args` under coreutils `timeout`, which signals the whole process group: past `capS`
 * seconds SIGINT (a training run saves a checkpoint on it), 10 s later SIGKILL. Killing only the
 * child would leave a bench suite's own children holding the output pipe open past the deadline.
 */
async function deno(args: readonly string[], capS: number): Promise<Finished> {
  const cap = String(Math.max(1, Math.floor(capS)));
  const result = await new Deno.Command("timeout", {
    args: ["-s", "INT", "-k", "10", cap, Deno.execPath(), ...args],
    env: { ...adapterEnv, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  return { code: result.code, text, timedOut: result.code === 124 || result.code === 137 };
}

/** Environment every later child runs under: the one that found the GPU. */
let adapterEnv: Record<string, string> = Deno.env.toObject();

async function findAdapter(): Promise<boolean> {
  const probe = `
    import { describeAdapter, formatAdapterReport, openDevice } from "./runtime/mod.ts";
    const r = describeAdapter(await openDevice());
    console.log(formatAdapterReport(r));
    console.log("CLASS " + r.adapterClass);`;
  for (const variant of ADAPTER_ENVS) {
    const env = Deno.env.toObject();
    for (const [k, v] of Object.entries(variant)) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    adapterEnv = env;
    const r = await deno(["eval", probe], 60);
    const described = Object.entries(variant).map(([k, v]) => v === undefined ? `${k} unset` : `${k}=${v}`);
    log(`adapter with ${described.join(", ") || "the environment as given"}:\n${r.text.trim()}`);
    if (r.text.includes("CLASS gpu") || (values["allow-cpu"] && r.text.includes("CLASS cpu"))) return true;
  }
  return false;
}

function medianStepMs(text: string): number | undefined {
  const ms = text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((o) => typeof o.ms === "number" && o.step > 10).map((o) => o.ms as number).sort((a, b) => a - b);
  return ms.length ? ms[Math.floor(ms.length / 2)] : undefined;
}

const trainArgs = (run: TrainRun, dir: string, extra: readonly string[]) => [
  "run",
  "-A",
  "cli/train.ts",
  SPEC,
  ...run.args,
  ...smokeBatch,
  "--out",
  dir,
  "--json",
  ...extra,
];

async function train(): Promise<void> {
  const probeSteps = Number(values["probe-steps"]);
  // Pipeline compiles take a minute on lavapipe, seconds on a GPU.
  const probeCapS = values.smoke ? 240 : 90;
  const probeStart = Date.now();
  const probes = await Promise.all(
    runs.map((run) =>
      deno(
        trainArgs(run, `${runsDir}/probe-${run.name}`, ["--steps", String(probeSteps), "--log-every", "1"]),
        probeCapS,
      )
    ),
  );
  const probeWallS = (Date.now() - probeStart) / 1000;
  // Training gets everything up to the bench's share, less 15 s for the final save.
  const benchS = skipped.has("bench") ? 0 : Number(values["bench-s"]);
  const trainS = secondsLeft() - benchS - 15;
  await Promise.all(runs.map(async (run, i) => {
    const probe = probes[i]!;
    const ms = medianStepMs(probe.text);
    if (probe.code !== 0 || ms === undefined) {
      log(`probe ${run.name} failed (exit ${probe.code}):\n${probe.text.slice(-3000)}`);
      return;
    }
    const startupS = Math.max(2, probeWallS - (probeSteps * ms) / 1000);
    // 0.85: steps ran ~15% slower in the full run than in the probe (smoke rehearsal on lavapipe:
    // the moving average's readbacks, checkpoints), and the schedule should end before the deadline.
    const steps = Math.floor((0.85 * (trainS - startupS) * 1000) / ms);
    log(
      `probe ${run.name}: median ${ms.toFixed(1)} ms/step, startup ~${
        startupS.toFixed(0)
      } s -> ${steps} steps`,
    );
    if (steps < 100) return log(`${run.name}: too few steps fit; skipped`);
    const dir = `${runsDir}/${run.name}`;
    const extra = ["--steps", String(steps), "--log-every", "50", "--checkpoint-every", "2000"];
    const r = await deno(trainArgs(run, dir, extra), trainS + 5);
    const last = r.text.split("\n").filter((l) => l.startsWith("{")).at(-1);
    log(
      `train ${run.name}: exit ${r.code}${r.timedOut ? " (interrupted at the deadline)" : ""}; last ${last}`,
    );
    if (r.code !== 0) log(r.text.slice(-3000));
  }));
}

async function pack(): Promise<void> {
  for (const run of runs) {
    const dir = `${runsDir}/${run.name}`;
    try {
      await Deno.stat(dir);
    } catch {
      continue;
    }
    const tar = new Deno.Command("bash", {
      args: [
        "-c",
        `tar -C ${runsDir} --exclude=optimizer.safetensors -cf - ${run.name} | ` +
        `split -b 15m - ${out}/${run.name}.tar.part-`,
      ],
    });
    const r = await tar.output();
    log(`packed ${run.name}: exit ${r.code}`);
  }
}

log(`lease: budget ${values.budget} s`);
if (!(await findAdapter())) {
  log("no GPU adapter under any environment: stopping");
  Deno.exit(1);
}

if (!skipped.has("conformance")) {
  const tests = await deno(["test", "-A", "--parallel", ...CONFORMANCE_TESTS], 70);
  log(`conformance: exit ${tests.code}${tests.timedOut ? " (cut at 70 s)" : ""}`);
  await Deno.writeTextFile(`${out}/conformance.txt`, tests.text);
}

for (const run of skipped.has("tune") ? [] : runs) {
  const r = await deno(["run", "-A", "cli/tune.ts", SPEC, ...run.shapes, ...smokeBatch], 30);
  log(
    `tune ${run.name}: exit ${r.code}${r.timedOut ? " (cut)" : ""}\n${
      r.text.trim().split("\n").slice(-6).join("\n")
    }`,
  );
}

await train();

// One suite per call: with --json a suite cut at the deadline would take the others' results with it.
for (const suite of skipped.has("bench") ? [] : ["t1", "matmul"]) {
  const cap = secondsLeft() - 10;
  if (cap < 30) break;
  const bench = await deno(["run", "-A", "bench/main.ts", "--quick", "--json", "--only", suite], cap);
  log(`bench ${suite}: exit ${bench.code}${bench.timedOut ? " (cut)" : ""}`);
  await Deno.writeTextFile(`${out}/bench.txt`, bench.text + "\n", { append: true });
}
await pack();
log("lease: done");
