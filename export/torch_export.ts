/**
 * `exportTorch`: a spec's loss entry as a PyTorch project in one folder.
 *
 *   model.py          the generated nn.Module (torch_model.ts)
 *   spec_runtime.py   the project's op semantics in torch: Philox, masked attention, safetensors
 *   train.py          DDP training under torchrun, reading data/ and writing our checkpoint folders
 *   grads.py          loss and every gradient on given weights and batch (the numeric check)
 *   export.json       spec, config, dims, micro-batch, parameter list, optimizer and schedule settings
 *   init/             a checkpoint of ours (our initializer, `seed`) that train.py starts from
 *   data/step_NNNNNN.safetensors   the project's assembled batches, one global batch per step
 *
 * The model is traced at the micro-batch; the shards hold the project's whole batch (dims.batch),
 * which train.py splits over ranks and accumulation steps.
 */
import { compile } from "../compiler/compile.ts";
import type { ParamLayout } from "../compiler/plan.ts";
import { type Node, size, toposort } from "../compiler/ir/mod.ts";
import { saveCheckpoint, specHash } from "../runtime/checkpoint.ts";
import { initParams } from "../runtime/init.ts";
import { encodeSafetensors, SAFE_DTYPE, type SafeTensor } from "../runtime/safetensors.ts";
import { resolveRunConfig } from "../runtime/train/bindings.ts";
import { resolveSettings, type TrainSettings } from "../runtime/train/settings.ts";
import { type AnyModel, type Batch, trace, type TracedModel } from "../spec/mod.ts";
import { ExportError } from "./errors.ts";
import { modelSource, type RandomRows } from "./torch_model.ts";
import type { ExportedParam } from "./torch_modules.ts";

export interface ExportOptions {
  readonly out: string;
  /** Config overrides (dotted keys reach nested groups), validated by the spec's schema. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Dim bindings; `batch` is the project's (global) batch the shards hold. */
  readonly dims?: Readonly<Record<string, number>>;
  /** Rows per forward call in torch (default: the whole batch). Must divide the batch. */
  readonly microBatch?: number;
  /** Training settings over the spec's defaults (steps, lr, seed, ...). */
  readonly settings?: Partial<TrainSettings>;
  /** Steps of data to write as shards (default 0: none). */
  readonly dataSteps?: number;
}

export interface ExportResult {
  readonly files: readonly string[];
  readonly traced: TracedModel;
  readonly params: readonly ParamLayout[];
  readonly settings: TrainSettings;
  readonly batch: number;
  readonly microBatch: number;
}

const PYTHON = ["spec_runtime.py", "train.py", "grads.py"] as const;

export async function exportTorch(
  model: AnyModel,
  specPath: string,
  opts: ExportOptions,
): Promise<ExportResult> {
  const config = resolveRunConfig(model, opts.config ?? {}, undefined);
  const batchDefault = model.training?.batch ?? model.dims?.batch;
  const dims = { ...model.dims, ...(batchDefault ? { batch: batchDefault } : {}), ...opts.dims };
  const batch = dims.batch;
  if (batch === undefined) {
    throw new ExportError(`spec "${model.name}" has no "batch" dim; give --dim batch=N`);
  }
  const micro = opts.microBatch ?? batch;
  if (!Number.isInteger(micro) || micro < 1 || batch % micro !== 0) {
    throw new ExportError(
      `--micro-batch ${micro} must be a positive integer that divides the batch ${batch}`,
    );
  }
  const traced = trace(model, { config, dims: { ...dims, batch: micro } });
  const settings = resolveSettings(model.training, undefined, opts.settings ?? {});
  const layout = compile(model, { config, dims: { ...dims, batch: micro }, entries: [] }).params;
  const params: ExportedParam[] = layout.map((p) => ({
    path: p.path,
    shape: p.shape,
    frozen: p.frozen,
    decay: p.decay,
  }));
  const source = modelSource({
    traced,
    params,
    randomRows: randomRows(model, config, dims, micro, traced),
    origin: specPath,
  });

  const out = opts.out;
  await Deno.mkdir(out, { recursive: true });
  const files: string[] = [];
  const write = async (name: string, text: string | Uint8Array) => {
    const path = `${out}/${name}`;
    if (typeof text === "string") await Deno.writeTextFile(path, text);
    else await Deno.writeFile(path, text);
    files.push(name);
  };
  await write("model.py", source);
  for (const name of PYTHON) {
    await write(name, await Deno.readTextFile(new URL(`./python/${name}`, import.meta.url)));
  }

  const hash = await specHash(await Deno.readTextFile(specPath));
  const spec = { path: specPath, name: model.name, hash };
  const manifest = {
    format: "transfusion-torch-export",
    version: 1,
    spec,
    config: traced.config,
    dims,
    batch,
    microBatch: micro,
    inputs: traced.inputs.map((i) => ({ name: i.arg.name, dtype: i.dtype, shape: i.shape })),
    outputs: Object.keys(traced.outputs),
    params: layout.map((p) => ({ path: p.path, shape: p.shape, frozen: p.frozen, decay: p.decay })),
    training: settings,
    schedule:
      "linear warmup to lr over `warmup` steps, then cosine to lrFloor at `steps` (runtime/schedule.ts)",
    seedInput: "(seed, step + 1): the executor's in-graph RNG input for 0-based step `step`",
  };
  await write("export.json", JSON.stringify(manifest, null, 2) + "\n");

  // The starting weights: this project's initializer, saved as one of its own checkpoints.
  const count = layout.reduce((end, p) => Math.max(end, p.offset + size(p.shape)), 0);
  const flat = initParams(layout, count, settings.seed);
  const values = new Map(layout.map((p) => [p.path, flat.subarray(p.offset, p.offset + size(p.shape))]));
  const zeros = new Map(
    layout.map((p) => [p.path, { m: new Float32Array(size(p.shape)), v: new Float32Array(size(p.shape)) }]),
  );
  await saveCheckpoint(`${out}/init`, {
    layout,
    params: values,
    optimizer: zeros,
    run: {
      spec,
      config: traced.config as never,
      dims: { ...dims },
      step: 0,
      data: { epoch: 0, index: 0 },
      rng: { seed: settings.seed },
      metrics: {},
    },
  });
  files.push("init/checkpoint");

  const steps = opts.dataSteps ?? 0;
  if (steps > 0) {
    const data = model.data?.(config as never, dims);
    if (!data) throw new ExportError(`spec "${model.name}" declares no data source; cannot write shards`);
    await Deno.mkdir(`${out}/data`, { recursive: true });
    for (let step = 0; step < steps; step++) {
      await write(
        `data/${shardName(step)}`,
        encodeBatch(data.batch(step, settings.seed), traced, batch, micro),
      );
    }
  }
  return { files, traced, params: layout, settings, batch, microBatch: micro };
}

export const shardName = (step: number) => `step_${String(step).padStart(6, "0")}.safetensors`;

/** One global batch as safetensors: each loss-entry input with the batch axis at its full size. */
export function encodeBatch(b: Batch, traced: TracedModel, batch: number, micro: number): Uint8Array {
  const tensors = new Map<string, SafeTensor>();
  for (const input of traced.inputs) {
    if (input.arg.name === "seed") continue;
    const values = b[input.arg.name];
    const shape = [input.shape[0]! * (batch / micro), ...input.shape.slice(1)];
    if (!values || values.length !== size(shape)) {
      throw new ExportError(
        `the data source's batch gives ${values?.length ?? "no"} values for "${input.arg.name}", ` +
          `expected ${input.dtype}[${shape.join(", ")}]`,
      );
    }
    const dtype = SAFE_DTYPE[input.dtype];
    const data = dtype === "F32"
      ? Float32Array.from(values)
      : dtype === "U32"
      ? Uint32Array.from(values)
      : Int32Array.from(values);
    tensors.set(input.arg.name, { dtype, shape, data });
  }
  return encodeSafetensors(tensors);
}

/**
 * How each random op's draws follow the batch rows, found by tracing again at twice the micro-batch:
 * a shape that does not change is "fixed"; one whose axis 0 doubles (the rest equal) is per-row.
 */
function randomRows(
  model: AnyModel,
  config: Record<string, unknown>,
  dims: Record<string, number>,
  micro: number,
  traced: TracedModel,
): Map<number, RandomRows> {
  const twice = trace(model, { config, dims: { ...dims, batch: 2 * micro } });
  const shapes = (t: TracedModel) =>
    new Map(
      toposort(Object.values(t.outputs))
        .filter((n): n is Node<"rand_uniform" | "rand_normal"> =>
          n.op === "rand_uniform" || n.op === "rand_normal"
        )
        .map((n) => [n.arg.stream, n.arg.shape]),
    );
  const [a, b] = [shapes(traced), shapes(twice)];
  const out = new Map<number, RandomRows>();
  for (const [stream, s1] of a) {
    const s2 = b.get(stream);
    const same = (x: readonly number[], y: readonly number[], from: number) =>
      x.length === y.length && x.every((d, i) => i < from || d === y[i]);
    if (s2 && same(s1, s2, 0)) out.set(stream, { kind: "fixed" });
    else if (s2 && same(s1, s2, 1) && s2[0] === 2 * s1[0]! && s1[0]! % micro === 0) {
      out.set(stream, { kind: "rows", perRow: size(s1) / micro });
    } else {
      out.set(stream, {
        kind: "unsplittable",
        why: `stream ${stream} has shape [${s1}] at batch ${micro} but [${s2 ?? "none"}] at ${2 * micro}`,
      });
    }
  }
  return out;
}
