/**
 * `deno task tune <spec.ts> [--batch N] [--dim name=N]... [--set key=value]... [--retune]`
 * Measures every candidate matmul variant for each matmul shape of the spec's plan on the present
 * adapter and caches the fastest per (adapter, shape) on disk (kernels/autotune.ts). Compiles done
 * by `train`, `bench` and the samplers then pick the cached choice; without one they use the
 * adapter class's default, which needs no tuning.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import { candidateVariants, defaultVariant, type MatmulShape, variantName } from "../kernels/matmul.ts";
import { shapeKey, tuneMatmul } from "../kernels/autotune.ts";
import { describeAdapter, openDevice } from "../runtime/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        batch: { type: "string" },
        dim: { type: "string", multiple: true, default: [] },
        set: { type: "string", multiple: true, default: [] },
        retune: { type: "boolean", default: false },
      },
    });
    const path = positionals[0];
    if (!path) throw new UsageError("usage: deno task tune <spec.ts> [--batch N] [--retune]");
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
