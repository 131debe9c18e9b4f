/**
 * The fused optimizer kernels: a two-pass global gradient L2 norm (with the clip scale it implies)
 * and one AdamW update over the whole flat parameter vector. Per-step values (lr, bias
 * corrections) come from the `scalars` buffer, which the runtime writes before each train step.
 */
import { bindingDecl, grid, type Kernel, type KernelBinding } from "./kernel.ts";
import { literal } from "./wgsl.ts";

/** Index of each optimizer value in the `scalars` buffer. */
export const SCALARS = {
  lr: 0,
  beta1: 1,
  beta2: 2,
  eps: 3,
  weightDecay: 4,
  /** 1 - beta1^t */
  bc1: 5,
  /** 1 - beta2^t */
  bc2: 6,
  /** 0 turns clipping off. */
  clipNorm: 7,
  /**
   * Written by the grad-norm kernel, read by AdamW: the factor the stored gradients are multiplied
   * by (the clip, times 1 / lossScale for a loss-scaled plan); 1 when no clipping ran.
   */
  clipScale: 8,
  gradNorm: 9,
} as const;

export const SCALAR_COUNT = 10;

const WORKGROUP = 256;
/** Upper bound on first-pass workgroups, so the second pass is one workgroup with a short loop. */
const MAX_PARTIALS = 1024;

/** Words of `act` scratch the grad-norm kernels use at `scratchOffset` (one f32 partial sum each). */
export function gradNormScratchWords(count: number): number {
  return Math.min(Math.max(Math.ceil(count / WORKGROUP), 1), MAX_PARTIALS);
}

/**
 * Global L2 norm of `grads[0..count)`: pass one writes a partial sum of squares per workgroup to
 * `act[scratchOffset + w]` (f32 bits); pass two sums them and writes the norm and
 * `clip_scale = min(1, clipNorm / (norm + 1e-6))` (1 when clipNorm is 0) into `scalars`. With
 * `lossScale` S != 1 the grads hold S * dL/dp: the norm written is that of dL/dp, and clip_scale
 * carries the 1 / S that AdamW then applies with the clip.
 */
export function gradNormKernels(count: number, scratchOffset: number, lossScale = 1): Kernel[] {
  if (!(lossScale >= 1 && Number.isFinite(lossScale))) {
    throw new RangeError(`gradNormKernels: lossScale must be a finite number >= 1, got ${lossScale}`);
  }
  const unscale = lossScale === 1 ? "" : ` * ${literal(1 / lossScale, "f32")}`;
  const partials = gradNormScratchWords(count);
  const partialBindings: KernelBinding[] = [
    { binding: 0, buffer: "grads", access: "read" },
    { binding: 1, buffer: "act", access: "read_write" },
  ];
  const finalBindings: KernelBinding[] = [
    { binding: 0, buffer: "act", access: "read" },
    { binding: 1, buffer: "scalars", access: "read_write" },
  ];
  const partialPass: Kernel = {
    name: "grad_norm_partials",
    doc: `sum of grads^2 over ${count} elements into ${partials} partials at act[${scratchOffset}]`,
    ops: ["grad_norm"],
    wgsl: `${partialBindings.map(bindingDecl).join("\n")}
${workgroupSum}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = wg.x * ${WORKGROUP}u + lid; i < ${count}u; i += ${partials * WORKGROUP}u) {
    let g = grads[i];
    acc += g * g;
  }
  let total = workgroup_sum(lid, acc);
  if (lid == 0u) { act[${scratchOffset}u + wg.x] = bitcast<u32>(total); }
}
`,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: [partials, 1, 1],
    bindings: partialBindings,
    flops: 2 * count,
    bytes: 4 * (count + partials),
  };
  const finalPass: Kernel = {
    name: "grad_norm_finish",
    doc: `norm and clip scale from ${partials} partials at act[${scratchOffset}]` +
      (unscale ? `; grads hold ${lossScale} x dL/dp, unscaled here` : ""),
    ops: ["grad_norm"],
    wgsl: `${finalBindings.map(bindingDecl).join("\n")}
${workgroupSum}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < ${partials}u; i += ${WORKGROUP}u) {
    acc += bitcast<f32>(act[${scratchOffset}u + i]);
  }
  let total = workgroup_sum(lid, acc);
  if (lid == 0u) {
    let norm = sqrt(total)${unscale};
    let clip = scalars[${SCALARS.clipNorm}];
    var scale = 1.0;
    if (clip > 0.0) { scale = min(1.0, clip / (norm + 1e-6)); }
    scalars[${SCALARS.clipScale}] = scale${unscale};
    scalars[${SCALARS.gradNorm}] = norm;
  }
}
`,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: [1, 1, 1],
    bindings: finalBindings,
    flops: partials + 4,
    bytes: 4 * (partials + 3),
  };
  return [partialPass, finalPass];
}

/** Tree sum over one workgroup; every invocation must call it (it has barriers). */
const workgroupSum = `var<workgroup> sums: array<f32, ${WORKGROUP}>;
fn workgroup_sum(lid: u32, x: f32) -> f32 {
  sums[lid] = x;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sums[lid] += sums[lid + s]; }
    workgroupBarrier();
  }
  return sums[0];
}`;

/**
 * One AdamW step over all `count` parameters, with the gradient scaled by `clip_scale` and
 * decoupled weight decay on elements whose `decay_mask` bit is set.
 */
export function adamwKernel(count: number): Kernel {
  const bindings: KernelBinding[] = [
    { binding: 0, buffer: "params", access: "read_write" },
    { binding: 1, buffer: "grads", access: "read" },
    { binding: 2, buffer: "adam_m", access: "read_write" },
    { binding: 3, buffer: "adam_v", access: "read_write" },
    { binding: 4, buffer: "scalars", access: "read" },
    { binding: 5, buffer: "decay_mask", access: "read" },
  ];
  const s = SCALARS;
  return {
    name: "adamw",
    doc: `AdamW update of ${count} parameters`,
    ops: ["adamw"],
    wgsl: `${bindings.map(bindingDecl).join("\n")}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * ${WORKGROUP}u;
  if (i >= ${count}u) { return; }
  let lr = scalars[${s.lr}];
  let b1 = scalars[${s.beta1}];
  let b2 = scalars[${s.beta2}];
  let g = grads[i] * scalars[${s.clipScale}];
  let m = b1 * adam_m[i] + (1.0 - b1) * g;
  let v = b2 * adam_v[i] + (1.0 - b2) * g * g;
  adam_m[i] = m;
  adam_v[i] = v;
  let mhat = m / scalars[${s.bc1}];
  let vhat = v / scalars[${s.bc2}];
  let decay = f32((decay_mask[i >> 5u] >> (i & 31u)) & 1u);
  let p = params[i];
  params[i] = p - lr * (mhat / (sqrt(vhat) + scalars[${s.eps}]) + scalars[${s.weightDecay}] * decay * p);
}
`,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: grid(Math.ceil(count / WORKGROUP)),
    bindings,
    flops: 16 * count,
    // read p, g, m, v; write p, m, v; one mask bit each
    bytes: 28 * count + Math.ceil(count / 8),
  };
}

/** The decay mask: bit (i % 32) of word (i / 32) is set when parameter element i gets weight decay. */
export function decayMaskWords(
  params: readonly { offset: number; shape: readonly number[]; decay: boolean }[],
  count: number,
): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(Math.max(Math.ceil(count / 32), 1));
  for (const p of params) {
    if (!p.decay) continue;
    const size = p.shape.reduce((a, b) => a * b, 1);
    if (p.offset < 0 || p.offset + size > count) {
      throw new Error(
        `decay mask: parameter at offset ${p.offset} with ${size} elements overruns ${count} parameters`,
      );
    }
    for (let i = p.offset; i < p.offset + size; i++) words[i >>> 5]! |= 1 << (i & 31);
  }
  return words;
}
