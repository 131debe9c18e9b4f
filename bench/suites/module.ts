/**
 * The generated module of the demo spec (examples/transfusion_demo.ts at its own config, batch 2):
 * the size of each file `deno task compile` writes, and the time `load()` takes until the model is
 * ready (plan read and parsed, weights read and checked, buffers, pipelines and bind groups built,
 * parameters uploaded). The first load also opens the device. Weights are untrained (same size).
 */
import { parseArgs } from "node:util";
import demo from "../../examples/transfusion_demo.ts";
import { compileModule, randomWeights } from "../../cli/compile.ts";
import type { GeneratedModule } from "../../runtime/standalone/api.ts";
import { report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });
const loads = values.quick ? 2 : 4;

const dir = await Deno.makeTempDir({ prefix: "bench-module-" });
try {
  const started = performance.now();
  const { files, params } = await compileModule(demo, "examples/transfusion_demo.ts", { out: dir });
  const compileMs = performance.now() - started;
  const weights = randomWeights(params);
  await Deno.writeFile(`${dir}/model.safetensors`, weights);
  const mod = (await import(new URL(`file://${dir}/mod.ts`).href)) as GeneratedModule;

  const times: number[] = [];
  let info = "";
  for (let i = 0; i < loads; i++) {
    const t0 = performance.now();
    const model = await mod.load(`${dir}/model.safetensors`);
    times.push(performance.now() - t0);
    info =
      `${model.info.name}: ${model.info.parameters} parameters, entries ${model.info.entries.join(", ")} ` +
      `(${model.info.generation}), batch ${model.info.batch}`;
    model.close();
  }
  const later = times.slice(1).sort((a, b) => a - b);
  const total = Object.values(files).reduce((a, b) => a + b, 0);
  const rows: SuiteResult["rows"] = [
    ...Object.entries(files).map(([file, bytes]) => ({ file, bytes })),
    { file: "total", bytes: total },
    { file: "model.safetensors (not part of the module)", bytes: weights.length },
    { file: "load, first (opens the device)", ms: times[0]! },
    { file: `load, median of ${later.length} more`, ms: later[Math.floor(later.length / 2)]! },
    { file: "compile (deno task compile, in process)", ms: compileMs },
  ];
  report({ suite: "module", rows, notes: [info] });
} finally {
  await Deno.remove(dir, { recursive: true });
}
