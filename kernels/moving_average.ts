/**
 * The parameters' exponential moving average as a kernel beside AdamW: one pass over the flat
 * parameter vector, `ema[i] = keep * ema[i] + (1 - keep) * params[i]`, with `keep` read from the
 * `scalars` buffer so the host only writes one word per update. keep = 0 starts the average at the
 * present parameters; keep = the product of the per-step decays since the last update folds several
 * steps into one pass (runtime/train/weight_average.ts has the schedule and the host twin).
 */
import { bindingDecl, grid, type Kernel, type KernelBinding } from "./kernel.ts";

const WORKGROUP = 256;

/** The plan buffer holding the average (parameter-shaped: every parameter at its `params` offset). */
export const AVERAGE_BUFFER = "ema";
/** The `scalars` slot of the keep factor; the slot after the optimizer's (SCALAR_COUNT). */
export const AVERAGE_SCALAR = "emaKeep";

export function movingAverageKernel(count: number, keepIndex: number): Kernel {
  const bindings: KernelBinding[] = [
    { binding: 0, buffer: "params", access: "read" },
    { binding: 1, buffer: AVERAGE_BUFFER, access: "read_write" },
    { binding: 2, buffer: "scalars", access: "read" },
  ];
  return {
    name: "ema_update",
    doc: `moving average of ${count} parameters, keep = scalars[${keepIndex}]`,
    ops: ["ema"],
    wgsl: `${bindings.map(bindingDecl).join("\n")}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * ${WORKGROUP}u;
  if (i >= ${count}u) { return; }
  let keep = scalars[${keepIndex}];
  ${AVERAGE_BUFFER}[i] = keep * ${AVERAGE_BUFFER}[i] + (1.0 - keep) * params[i];
}
`,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: grid(Math.ceil(count / WORKGROUP)),
    bindings,
    flops: 3 * count,
    bytes: 12 * count,
  };
}
