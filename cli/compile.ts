/**
 * `deno task compile <spec.ts> --out DIR [--batch B] [--set key=value]... [--dim name=N]...
 *    [--adapter cpu|gpu] [--generation cached|uncached] [--random-weights FILE]`
 *
 * Compiles a Transfusion spec's sampling entries (the KV-cache entries prefill, decode, denoise_span
 * when the spec has them, else logits and denoise) into a standalone module:
 *   DIR/plan.json     the inference plan: WGSL kernels, buffer layout, parameters, config (plain data)
 *   DIR/runtime.js    the runtime that interprets plans (bundled from runtime/standalone/entry.ts)
 *   DIR/runtime.d.ts  its types (runtime/standalone/api.ts)
 *   DIR/mod.ts        `load(weights)` and `toPng(image)`; imports only ./runtime.js
 *   DIR/decoder.safetensors  only for a spec whose images are a VAE's latents (its data declares them,
 *                     `DataSource.latents`): that VAE run's weights; plan.json then also holds its
 *                     encode and decode entries, so `generate` returns pictures, not latents
 * The module needs neither the compiler nor the spec: `(await load("model.safetensors")).generate(...)`.
 * Every entry runs B rows per call (default 2: one image with classifier-free guidance).
 * `--random-weights FILE` also writes untrained weights that fit the plan (to try a module out).
 */
import { compile } from "../compiler/compile.ts";
import type { ParamLayout, Plan } from "../compiler/plan.ts";
import { initParams } from "../runtime/init.ts";
import { encodeSafetensors, type SafeTensor } from "../runtime/safetensors.ts";
import type { AnyModel } from "../spec/model.ts";
import type { TransfusionConfig } from "../spec/transfusion/config.ts";
import { CACHED_ENTRIES, UNCACHED_ENTRIES } from "../runtime/standalone/generation.ts";
import {
  MODULE_FORMAT,
  MODULE_VERSION,
  type ModuleDecoder,
  type ModulePlan,
} from "../runtime/standalone/plan_file.ts";
import { compileVae, VaeRunMissing } from "../data/latent_codec.ts";
import { moduleSource } from "../runtime/standalone/module_source.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";

export const COMPILE = command({
  name: "compile",
  args: "<spec.ts>",
  summary: "Compiles a Transfusion spec's sampling entries into a standalone module in DIR (plan.json, " +
    "runtime.js, runtime.d.ts, mod.ts) that needs neither the compiler nor the spec.",
  flags: {
    out: { type: "string", value: "DIR", required: true, help: "the module's folder" },
    batch: {
      type: "string",
      value: "B",
      help: "rows per call (2: one image with guidance)",
      defaultText: "2",
    },
    ...SPEC_FLAGS,
    adapter: {
      type: "string",
      value: "cpu|gpu",
      help: "the adapter class kernels are chosen for",
      defaultText: "cpu",
    },
    generation: {
      type: "string",
      value: "cached|uncached",
      help: "KV-cache entries (prefill, decode, denoise_span) or logits and denoise",
      defaultText: "cached when the spec has them",
    },
    "random-weights": {
      type: "string",
      value: "FILE",
      help: "also write untrained weights that fit the plan",
    },
  },
  examples: [
    "deno task compile examples/transfusion_demo.ts --out build/demo --random-weights build/w.safetensors",
  ],
});

const USAGE = usageLine(COMPILE);

export interface ModuleOptions {
  readonly out: string;
  readonly batch?: number;
  readonly config?: Record<string, unknown>;
  readonly dims?: Record<string, number>;
  /** Kernel variants for this adapter class; default "cpu" (the compiler's default). */
  readonly adapterClass?: "cpu" | "gpu";
  /** Which entries generation runs; default "cached" when the spec has the KV-cache entries. */
  readonly generation?: "cached" | "uncached";
}

/** The files written, with their sizes in bytes (decoder.safetensors only for a model of latents). */
export type ModuleFiles =
  & Record<"plan.json" | "runtime.js" | "runtime.d.ts" | "mod.ts", number>
  & { "decoder.safetensors"?: number };

/** The VAE's weights in a module of latents, next to plan.json. */
export const DECODER_WEIGHTS = "decoder.safetensors";

export interface CompiledModule {
  readonly files: ModuleFiles;
  /** The parameters with their real inits (plan.json keeps only the layout), for `randomWeights`. */
  readonly params: readonly ParamLayout[];
}

const ROOT = new URL("../", import.meta.url);
/** Training-only buffers an inference plan drops unless one of its kernels or steps uses them. */
const TRAINING_ROLES = new Set(["gradient", "optimizer", "mask", "scalars"]);

/** Compiles `model` (loaded from `specPath`) and writes the module's four files to `opts.out`. */
export async function compileModule(
  model: AnyModel,
  specPath: string,
  opts: ModuleOptions,
): Promise<CompiledModule> {
  const batch = opts.batch ?? 2;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new UsageError(`--batch must be an integer >= 1, got ${batch}`);
  }
  const entries = generationEntries(model, specPath, opts.generation);
  const plan = compile(model, {
    config: opts.config ?? {},
    dims: { ...model.dims, ...opts.dims, batch },
    entries,
    adapterClass: opts.adapterClass ?? "cpu",
  });
  const decoder = await moduleDecoder(model, specPath, plan, opts.adapterClass ?? "cpu");
  const module: ModulePlan = {
    format: MODULE_FORMAT,
    version: MODULE_VERSION,
    spec: specPath,
    batch,
    config: plan.config as TransfusionConfig,
    plan: inferencePlan(plan),
    ...(decoder ? { decoder: decoder.decoder } : {}),
  };
  await Deno.mkdir(opts.out, { recursive: true });
  const at = (name: keyof ModuleFiles) => `${opts.out}/${name}`;
  if (decoder) await Deno.writeFile(at(DECODER_WEIGHTS), decoder.weights);
  await Deno.writeTextFile(at("plan.json"), JSON.stringify(module));
  await bundleRuntime(at("runtime.js"));
  await Deno.copyFile(new URL("runtime/standalone/api.ts", ROOT), at("runtime.d.ts"));
  await Deno.writeTextFile(at("mod.ts"), moduleSource(module));
  const files = {} as ModuleFiles;
  for (const name of ["plan.json", "runtime.js", "runtime.d.ts", "mod.ts"] as const) {
    files[name] = (await Deno.stat(at(name))).size;
  }
  if (decoder) files[DECODER_WEIGHTS] = (await Deno.stat(at(DECODER_WEIGHTS))).size;
  return { files, params: plan.params };
}

/**
 * For a spec whose images are a VAE's latents (its data source declares `latents`), the VAE the
 * module carries: its encode and decode entries compiled at batch 1 (generate decodes image by
 * image) and its parameters as a weights file. Why carry the VAE and not return latents: a user's
 * app wants pictures, and the latents mean nothing without the VAE's weights and the scaling
 * training used, which only this project's run folders hold. Why a second plan and weights file
 * rather than the VAE's entries merged into the Transfusion plan: the VAE's weights are fixed by
 * its run and the user's weights file is the Transfusion checkpoint, unchanged; one plan per model
 * keeps both checked against their own parameter tables. A missing VAE run is an error naming it.
 */
async function moduleDecoder(
  model: AnyModel,
  specPath: string,
  plan: Plan,
  adapterClass: "cpu" | "gpu",
): Promise<{ decoder: ModuleDecoder; weights: Uint8Array } | undefined> {
  let latents;
  try {
    latents = model.data?.(plan.config as never, plan.dims).latents;
  } catch (e) {
    if (e instanceof VaeRunMissing) throw missingVae(specPath, e);
    // A spec's data may read files absent here (a folder of pictures): those are pixels anyway.
    console.error(
      `note: ${specPath}'s data source failed (${(e as Error).message}); compiled as a model of pixels ` +
        `(a model of latents declares them in its data source)`,
    );
    return undefined;
  }
  if (!latents) return undefined;
  let vae;
  try {
    vae = await compileVae(latents.vaeRun, ["encode", "decode"], { batch: 1, adapterClass });
  } catch (e) {
    if (e instanceof VaeRunMissing) throw missingVae(specPath, e);
    throw e;
  }
  const image = (plan.config as TransfusionConfig).image;
  if (vae.latent.side !== image.size || vae.latent.channels !== image.channels) {
    throw new UsageError(
      `${specPath}: the VAE run ${latents.vaeRun} decodes ${vae.latent.channels}x${vae.latent.side}x` +
        `${vae.latent.side} latents; the model's images are ${image.channels}x${image.size}x${image.size}`,
    );
  }
  const tensors = new Map<string, SafeTensor>();
  for (const p of vae.plan.params) {
    tensors.set(p.path, { dtype: "F32", shape: p.shape, data: vae.params.get(p.path)! });
  }
  return {
    decoder: {
      vaeRun: latents.vaeRun,
      spec: vae.spec,
      step: vae.step,
      latent: { size: vae.latent.side, channels: vae.latent.channels },
      pixels: { size: vae.pixel.side, channels: vae.pixel.channels },
      mean: latents.mean,
      std: latents.std,
      weights: DECODER_WEIGHTS,
      plan: inferencePlan(vae.plan),
    },
    weights: encodeSafetensors(tensors, { vae_run: latents.vaeRun, step: String(vae.step) }),
  };
}

/** The spec's images are latents of a VAE run that is not there: the module could not show them. */
function missingVae(specPath: string, e: VaeRunMissing): UsageError {
  const why = e.message.startsWith(specPath) ? e.message : `${specPath}: ${e.message}`;
  return new UsageError(
    `${why}\n(a module of latents carries its VAE's decoder, so compile needs the VAE run)`,
  );
}

/** A safetensors file of freshly initialized parameters (runtime/init.ts): an untrained model. */
export function randomWeights(params: readonly ParamLayout[], seed = 0): Uint8Array {
  const count = params.reduce((n, p) => Math.max(n, p.offset + p.shape.reduce((a, b) => a * b, 1)), 0);
  const flat = initParams(params, count, seed);
  const tensors = new Map<string, SafeTensor>();
  for (const p of params) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    tensors.set(p.path, { dtype: "F32", shape: p.shape, data: flat.slice(p.offset, p.offset + size) });
  }
  return encodeSafetensors(tensors, { spec: "random init", seed: String(seed) });
}

/** The KV-cache entries when the spec has them (unless "uncached" is asked for), else logits + denoise. */
function generationEntries(
  model: AnyModel,
  specPath: string,
  wanted: "cached" | "uncached" | undefined,
): readonly string[] {
  const lacks = (names: readonly string[]) => names.filter((e) => !model.entries?.[e]);
  if (wanted !== "uncached" && lacks(CACHED_ENTRIES).length === 0) return CACHED_ENTRIES;
  const set = wanted === "cached" ? CACHED_ENTRIES : UNCACHED_ENTRIES;
  const missing = lacks(set);
  if (missing.length > 0) {
    const what = missing.length > 1 ? "entries" : "entry";
    throw new UsageError(
      `${specPath} (model "${model.name}") has no ${missing.join(", ")} ${what}: ` +
        `${wanted ?? "uncached"} generation needs ${set.join(", ")}`,
    );
  }
  return set;
}

/**
 * The plan without training state: gradient and optimizer buffers are dropped, and parameter inits
 * become zeros (the weights file fills every parameter; "values" tables would only bloat the file).
 */
export function inferencePlan(plan: Plan): Plan {
  const used = new Set<string>();
  for (const k of plan.kernels) for (const b of k.bindings) used.add(b.buffer);
  for (const e of Object.values(plan.entries)) {
    for (const slot of [...e.inputs, ...e.outputs]) used.add(slot.buffer);
    for (const step of e.steps) for (const v of Object.values(step)) if (typeof v === "string") used.add(v);
  }
  const { optimizer: _, ...rest } = plan;
  return {
    ...rest,
    buffers: plan.buffers.filter((b) => !TRAINING_ROLES.has(b.role) || used.has(b.name)),
    params: plan.params.map((p) => ({ ...p, init: { kind: "zeros" } })),
  };
}

/** `deno bundle` of runtime/standalone/entry.ts, marked with its types for TypeScript importers. */
async function bundleRuntime(path: string): Promise<void> {
  const entry = new URL("runtime/standalone/entry.ts", ROOT).pathname;
  const config = new URL("deno.json", ROOT).pathname;
  const temp = `${path}.tmp`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--config", config, "--platform", "deno", "--output", temp, entry],
    cwd: new URL(".", ROOT).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(`deno bundle failed (exit ${result.code}):\n${new TextDecoder().decode(result.stderr)}`);
  }
  const code = await Deno.readTextFile(temp);
  await Deno.writeTextFile(path, `// @ts-self-types="./runtime.d.ts"\n${code}`);
  await Deno.remove(temp);
}

/** `--dim name=N` pairs. */
function parseDims(pairs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of pairs) {
    const [name, value] = pair.split("=");
    const n = Number(value);
    if (!name || value === undefined || !Number.isInteger(n) || n < 1) {
      throw new UsageError(`--dim expects name=N with N a positive integer, got "${pair}"`);
    }
    if (name === "batch") throw new UsageError(`set the batch with --batch ${value}, not --dim`);
    out[name] = n;
  }
  return out;
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommand(COMPILE, Deno.args);
  const specPath = positionals[0];
  if (!specPath || positionals.length > 1 || !values.out) throw new UsageError(USAGE);
  const adapter = values.adapter ?? "cpu";
  if (adapter !== "cpu" && adapter !== "gpu") {
    throw new UsageError(`--adapter must be cpu or gpu, got "${adapter}"`);
  }
  const generation = values.generation;
  if (generation !== undefined && generation !== "cached" && generation !== "uncached") {
    throw new UsageError(`--generation must be cached or uncached, got "${generation}"`);
  }
  const model = await loadSpec(specPath);
  const started = performance.now();
  const { files, params } = await compileModule(model, specPath, {
    out: values.out,
    batch: values.batch === undefined ? 2 : Number(values.batch),
    config: parseOverrides(values.set),
    dims: parseDims(values.dim),
    adapterClass: adapter,
    ...(generation ? { generation } : {}),
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`wrote ${values.out}/ (model "${model.name}", ${seconds} s):`);
  for (const [name, bytes] of Object.entries(files)) console.log(`  ${name.padEnd(19)} ${bytes} bytes`);
  const decoder = files["decoder.safetensors"] === undefined
    ? undefined
    : (JSON.parse(await Deno.readTextFile(`${values.out}/plan.json`)) as ModulePlan).decoder;
  if (decoder) {
    const { latent: l, pixels: p } = decoder;
    console.log(
      `its images are ${l.channels}x${l.size}x${l.size} latents: the module carries the VAE of ` +
        `${decoder.vaeRun} (step ${decoder.step}), so generate returns ${p.size}x${p.size}x${p.channels} pictures`,
    );
  }
  const weights = values["random-weights"];
  if (weights) {
    await Deno.writeFile(weights, randomWeights(params));
    console.log(`wrote ${weights}: untrained weights (seed 0)`);
  }
}

if (import.meta.main) await runCli(main);
