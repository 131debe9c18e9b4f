/**
 * The demo and `deno task eval` prompt a run with the caption its data source trains on: the CPU
 * demo spec's bare digit, the shipped checkpoint spec's T1 phrase. A wrong template would score a
 * model on prompts it never saw (the CPU spec's 2-token caption slot cannot even hold T1's).
 */
import assert from "node:assert/strict";
import { resolveConfig } from "../spec/config.ts";
import { promptTemplate, T1_CAPTION_TEMPLATE } from "../data/mod.ts";
import cpuDemo from "../examples/transfusion_demo_cpu.ts";
import shippedDemo from "../examples/transfusion_demo.ts";
import type { ModelRun } from "../runtime/generate/run.ts";

function runOf(model: typeof cpuDemo, path: string): Pick<ModelRun, "model" | "config" | "dims"> {
  const config = resolveConfig(model.config, {}, path) as ModelRun["config"];
  return { model, config, dims: { ...model.dims } };
}

Deno.test("promptTemplate: the CPU demo spec is prompted with the bare digit it trains on", () => {
  const run = runOf(cpuDemo, "examples/transfusion_demo_cpu.ts");
  assert.equal(promptTemplate(run), "{n}");
  // Its caption slot holds the digit and EOS: T1's 21-byte caption would not fit.
  assert.equal(run.config.text.captionLength, 2);
});

Deno.test("promptTemplate: the shipped checkpoint's spec keeps T1's caption", () => {
  assert.equal(promptTemplate(runOf(shippedDemo, "examples/transfusion_demo.ts")), T1_CAPTION_TEMPLATE);
});

Deno.test("promptTemplate: a spec without a data source falls back to T1's caption", () => {
  const run = runOf(cpuDemo, "examples/transfusion_demo_cpu.ts");
  const { data: _data, ...withoutData } = run.model;
  assert.equal(promptTemplate({ ...run, model: withoutData as typeof run.model }), T1_CAPTION_TEMPLATE);
});
