/**
 * Every peer measurement, one after another, printed as a table (or JSON with --json):
 *
 *   deno run -A bench/peers/print_peers.ts [--json] [--runs N] [--t1-steps N] [--no-t1]
 */
import { parseArgs } from "node:util";
import { applyGpuEnv } from "../../runtime/gpu_env.ts";
import { jaxMatmulGflops, jaxT1Step, PEER_MATMUL_SHAPES, PEER_VERSIONS, tfjsMatmulGflops } from "./mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "5" },
    "t1-steps": { type: "string", default: "3" },
    "no-t1": { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const t1Steps = Number(values["t1-steps"]);
const log = (line: string) => values.json || console.log(line);

applyGpuEnv();
const adapter = await navigator.gpu?.requestAdapter();
log(`adapter: ${adapter?.info.description ?? "none"}; peers: ${JSON.stringify(PEER_VERSIONS)}`);

const matmul: { name: string; tfjsWebgpu: number; jaxWebgpu: number; jaxWasm: number }[] = [];
for (const { name, shape } of PEER_MATMUL_SHAPES) {
  const row = {
    name,
    tfjsWebgpu: await tfjsMatmulGflops(shape, { runs }),
    jaxWebgpu: await jaxMatmulGflops(shape, "webgpu", { runs }),
    jaxWasm: await jaxMatmulGflops(shape, "wasm", { runs }),
  };
  matmul.push(row);
  const cells = [row.tfjsWebgpu, row.jaxWebgpu, row.jaxWasm].map((g) => g.toFixed(2).padStart(8));
  log(`${name.padEnd(26)} GFLOP/s  tfjs webgpu ${cells[0]}  jax webgpu ${cells[1]}  jax wasm ${cells[2]}`);
}

const t1: Record<string, { stepMs: number; runsMs: readonly number[]; losses: readonly number[] }> = {};
if (!values["no-t1"]) {
  for (const device of ["wasm", "webgpu"] as const) {
    const report = await jaxT1Step(device, t1Steps);
    t1[`jax-${device}`] = report;
    const losses = report.losses.map((l) => l.toFixed(3)).join(" ");
    log(
      `T1 step jax ${device}: median ${report.stepMs.toFixed(0)} ms over ${t1Steps} steps; losses ${losses}`,
    );
  }
}

if (values.json) console.log(JSON.stringify({ adapter: adapter?.info.description, matmul, t1 }, null, 2));
