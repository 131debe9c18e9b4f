/**
 * `deno task export <spec.ts> --to torch --out DIR [--set key=value]... [--dim name=N]...
 *    [--micro-batch N] [--steps N] [--seed S] [--data-steps N]`
 *
 * Writes the spec's loss entry as a PyTorch project (export/torch_export.ts): model.py, train.py
 * (run it with `python3 -m torch.distributed.run --redirects 2 --tee 2 --nproc_per_node 2 DIR/train.py
 * --out RUN`; the two flags work around torch 1.13 on Python 3.11),
 * grads.py, export.json, init/ (a checkpoint of ours to start from) and, with --data-steps, the
 * project's batches for those steps as data/step_NNNNNN.safetensors.
 */
import { exportTorch } from "../export/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";

export const EXPORT = command({
  name: "export",
  args: "<spec.ts>",
  summary: "Writes the spec's loss entry as a PyTorch project (model.py, train.py, grads.py, export.json, " +
    "init/ with our initial checkpoint, and with --data-steps the batches of those steps).",
  flags: {
    to: { type: "string", value: "torch", required: true, help: "the target (torch is the one there is)" },
    out: { type: "string", value: "DIR", required: true, help: "the project's folder" },
    ...SPEC_FLAGS,
    "micro-batch": {
      type: "string",
      value: "N",
      help: "rows per micro-batch",
      defaultText: "the whole batch",
    },
    steps: { type: "string", value: "N", help: "training steps of train.py", defaultText: "the spec's" },
    seed: {
      type: "string",
      value: "S",
      help: "seed of init and data",
      defaultText: "the spec's training, else 0",
    },
    "data-steps": {
      type: "string",
      value: "N",
      help: "also write the batches of the first N steps",
      defaultText: "0",
    },
  },
  examples: ["deno task export examples/transfusion_demo.ts --to torch --out build/torch --data-steps 4"],
  notes: [
    "Then: python3 -m torch.distributed.run --redirects 2 --tee 2 --nproc_per_node 2 DIR/train.py --out RUN",
  ],
});

const USAGE = usageLine(EXPORT);

function positiveInt(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new UsageError(`--${name} must be a non-negative integer, got "${raw}"`);
  }
  return n;
}

async function main() {
  const { values, positionals } = parseCommand(EXPORT, Deno.args);
  const specPath = positionals[0];
  if (!specPath || !values.out) throw new UsageError(USAGE);
  if (values.to !== "torch") {
    throw new UsageError(`--to must be "torch" (the one target), got "${values.to ?? ""}"`);
  }
  const dims: Record<string, number> = {};
  for (const pair of values.dim ?? []) {
    const [k, v] = pair.split("=");
    const n = Number(v);
    if (!k || !Number.isInteger(n) || n <= 0) {
      throw new UsageError(`--dim expects name=N (N > 0), got "${pair}"`);
    }
    dims[k] = n;
  }
  const steps = positiveInt("steps", values.steps);
  const seed = positiveInt("seed", values.seed);
  const micro = positiveInt("micro-batch", values["micro-batch"]);
  if (micro === 0) throw new UsageError(`--micro-batch must be at least 1, got 0`);
  const model = await loadSpec(specPath);
  const result = await exportTorch(model, specPath, {
    out: values.out,
    config: parseOverrides(values.set ?? []),
    dims,
    ...(micro ? { microBatch: micro } : {}),
    settings: { ...(steps ? { steps } : {}), ...(seed !== undefined ? { seed } : {}) },
    dataSteps: positiveInt("data-steps", values["data-steps"]) ?? 0,
  });
  console.log(
    `exported ${result.traced.name} (batch ${result.batch}, micro-batch ${result.microBatch}, ` +
      `${result.params.length} parameter tensors) to ${values.out}: ${result.files.length} files`,
  );
  // --redirects/--tee 2: Debian's torch 1.13 on Python 3.11 cannot parse torchrun's default "0" for them.
  console.log(
    `train: python3 -m torch.distributed.run --redirects 2 --tee 2 --nproc_per_node 2 ${values.out}/train.py --out RUN`,
  );
}

if (import.meta.main) await runCli(main);
