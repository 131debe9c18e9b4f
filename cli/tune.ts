/**
 * `deno task tune <spec.ts> [--batch N] [--dim name=N]... [--set key=value]... [--retune]`
 * Measures every candidate matmul variant for each matmul shape of the spec's plan on the present
 * adapter and caches the fastest per (adapter, shape) on disk (kernels/autotune.ts). Compiles done
 * by `train`, `bench` and the samplers then pick the cached choice; without one they use the
 * adapter class's default, which needs no tuning.
 */
import { compile } from "../compiler/mod.ts";
import { candidateVariants, defaultVariant, type MatmulShape, variantName } from "../kernels/matmul.ts";
import { shapeKey, tuneMatmul } from "../kernels/autotune.ts";
import { describeAdapter, openDevice } from "../runtime/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";

export const TUNE = command({
  name: "tune",
  args: "<spec.ts>",
  summary: "Measures every candidate matmul variant for each matmul shape of the spec's plan on this " +
    "adapter and caches the fastest; later compiles (train, bench, samplers) pick the cached choice.",
  flags: {
    batch: { type: "string", value: "N", help: "the batch dim", defaultText: "the spec's" },
    ...SPEC_FLAGS,
    retune: { type: "boolean", default: false, help: "measure again even where a choice is cached" },
  },
  examples: ["deno task tune examples/transfusion_demo.ts"],
});

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseCommand(TUNE, Deno.args);
    const path = positionals[0];
    if (!path) throw new UsageError(usageLine(TUNE));
    const model = await loadSpec(path);
    const dims = parseOverrides(values.dim) as Record<string, number>;
    if (values.batch) dims.batch = Number(values.batch);
    const handle = await openDevice();
    const adapter = describeAdapter(handle);
    const shapes = new Map<string, MatmulShape>();
    compile(model, {
      config: parseOverrides(values.set),
      dims,
      adapterClass: adapter.adapterClass,
      matmulVariant: (s) => {
        shapes.set(shapeKey(s), s);
        return undefined;
      },
    });
    console.log(`${adapter.name} (${adapter.adapterClass}): ${shapes.size} matmul shapes`);
    for (const shape of shapes.values()) {
      const best = await tuneMatmul(
        handle.device,
        adapter.cacheKey,
        shape,
        undefined,
        candidateVariants(adapter.adapterClass, shape),
        { retune: values.retune },
      );
      const fallback = defaultVariant(adapter.adapterClass, shape);
      console.log(
        `  ${shapeKey(shape).padEnd(24)} ${variantName(best)}${
          variantName(best) === variantName(fallback) ? " (= default)" : ""
        }`,
      );
    }
  });
}
