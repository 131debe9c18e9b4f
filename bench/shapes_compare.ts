/**
 * Side by side on the shapes dataset: trains each variant spec on the same data, seed and budget, then
 * evaluates it with the pixel checker, and prints one markdown table.
 *
 *   deno run -A bench/shapes_compare.ts [--steps N | --seconds T] [--generate K] [--captions K]
 *     [--sample-steps S] [--cfg W] [--out DIR] [SPEC[=LABEL] ...]
 *
 * SPECs default to examples/transfusion_shapes.ts (linear pixel patches); give the U-Net patch and
 * U-Net-on-VAE-latent specs next to it to compare them. A step budget (default 200) gives every
 * variant the same steps and the same learning-rate schedule; a time budget (--seconds) trains each
 * for that long from its first step (compilation and a latent cache's encoding left out; steps then
 * differ and the table says how many), stopping it with SIGINT, on which training saves its
 * checkpoint; its schedule is sized for 1,000,000 steps, so past warmup it does not decay. Step
 * time is the median of the logged intervals after the first (compilation); on a shared machine the
 * ratio to the first variant, measured in the same run, is the figure to read.
 */
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    steps: { type: "string" },
    seconds: { type: "string" },
    generate: { type: "string", default: "16" },
    captions: { type: "string", default: "16" },
    "sample-steps": { type: "string", default: "25" },
    cfg: { type: "string", default: "3" },
    out: { type: "string", default: "runs/shapes_compare" },
  },
});
const specs = positionals.length ? positionals : ["examples/transfusion_shapes.ts"];
const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
const steps = values.steps === undefined ? (seconds ? 1_000_000 : 200) : Number(values.steps);
for (const [flag, n] of [["steps", steps], ["seconds", seconds ?? 1]] as const) {
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${flag} must be a positive integer, got ${n}`);
}

const TASK_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env=DENO_WEBGPU_BACKEND,XDG_RUNTIME_DIR,TMPDIR,XDG_CACHE_HOME,HOME",
  "--allow-sys=uid",
];

interface Row {
  readonly label: string;
  readonly steps: number;
  readonly msPerStep: number;
  readonly final: Record<string, number>;
  readonly eval: Record<string, unknown>;
}

/**
 * Runs a CLI, returning stdout; stderr passes through so progress shows. With `stopAfter`, the child
 * gets SIGINT that many seconds after its first JSON line (training's step 1): compiling the plan and
 * encoding a latent cache take minutes and differ per variant, so a time budget that counted them would
 * not be the same training time for each.
 */
async function runCli(script: string, args: string[], stopAfter?: number): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_FLAGS, script, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (stopAfter !== undefined && timer === undefined && /^\{/m.test(text)) {
      timer = setTimeout(() => child.kill("SIGINT"), stopAfter * 1000);
    }
  }
  text += decoder.decode();
  const { code } = await child.status;
  clearTimeout(timer);
  // 130: stopped by the time budget's SIGINT, after saving.
  if (code !== 0 && !(stopAfter !== undefined && code === 130)) {
    throw new Error(`${script} ${args.join(" ")} exited ${code}`);
  }
  return text;
}

const median = (xs: number[]) => xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN;

async function compare(spec: string, label: string): Promise<Row> {
  const dir = `${values.out}/${label}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const logEvery = Math.max(1, Math.min(10, Math.floor(steps / 10)));
  const trainArgs = [
    spec,
    "--steps",
    String(steps),
    "--seed",
    "0",
    "--out",
    dir,
    "--json",
    "--log-every",
    String(logEvery),
  ];
  const lines = (await runCli("cli/train.ts", trainArgs, seconds)).split("\n").filter((l) =>
    l.startsWith("{")
  );
  const logs = lines.map((l) => JSON.parse(l) as Record<string, number>);
  const last = logs.at(-1);
  if (!last) throw new Error(`${label}: training logged nothing`);
  const { step, loss, lm, diffusion } = last;
  const evalArgs = [
    dir,
    "--json",
    "--generate",
    values.generate,
    "--captions",
    values.captions,
    "--steps",
    values["sample-steps"],
    "--cfg",
    values.cfg,
    "--loss-batches",
    "4",
  ];
  const report = JSON.parse((await runCli("cli/eval.ts", evalArgs)).trim().split("\n").at(-1)!);
  return {
    label,
    steps: step!,
    msPerStep: median(logs.slice(1).map((l) => l.ms!)),
    final: { loss: loss!, lm: lm!, diffusion: diffusion! },
    eval: report,
  };
}

type Split = { accuracy: Record<string, number> };
const pct = (x: number | undefined) => (x === undefined ? "-" : `${(100 * x).toFixed(0)}%`);

function table(rows: readonly Row[]): string {
  const head = [
    "variant",
    "steps",
    "ms/step",
    "vs first",
    "loss",
    "lm",
    "diffusion",
    "held-out loss",
    "gen held-out colour/kind/size/where",
    "gen held-out all",
    "gen seen all",
    "caption held-out all",
    "caption train all",
  ];
  const base = rows[0]?.msPerStep ?? NaN;
  const body = rows.map((r) => {
    const e = r.eval as {
      generation: { heldOut: Split; train: Split };
      captioning: { heldOut: Split; train: Split };
      heldOutLosses: { values: Record<string, number> };
    };
    const g = e.generation.heldOut.accuracy;
    return [
      r.label,
      String(r.steps),
      r.msPerStep.toFixed(0),
      `${(r.msPerStep / base).toFixed(2)}x`,
      r.final.loss!.toFixed(3),
      r.final.lm!.toFixed(3),
      r.final.diffusion!.toFixed(4),
      e.heldOutLosses.values.loss?.toFixed(3) ?? "-",
      ["colour", "kind", "size", "where"].map((a) => pct(g[a])).join(" / "),
      pct(g.all),
      pct(e.generation.train.accuracy.all),
      pct(e.captioning.heldOut.accuracy.all),
      pct(e.captioning.train.accuracy.all),
    ];
  });
  return [head, head.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

const rows: Row[] = [];
for (const arg of specs) {
  const [spec = arg, label = spec.split("/").at(-1)!.replace(/\.ts$/, "")] = arg.split("=");
  console.error(`== ${label}: ${spec}, ${seconds ? `${seconds} s` : `${steps} steps`}`);
  rows.push(await compare(spec, label));
}
const budget = seconds ? `${seconds} s of training each` : `${steps} steps each`;
const note =
  `shapes side by side: ${budget}, seed 0; eval ${values.generate} generated + ${values.captions} ` +
  `captioned per split, ${values["sample-steps"]} sampler steps, cfg ${values.cfg}`;
await Deno.mkdir(values.out, { recursive: true });
const md = `${note}\n\n${table(rows)}\n`;
await Deno.writeTextFile(`${values.out}/table.md`, md);
console.log(md);
