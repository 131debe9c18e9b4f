/**
 * The conv2d primitive (one implicit-GEMM kernel, kernels/conv.ts, bias and GELU fused as its
 * epilogue) against the same convolution written as im2col + one batched matmul over primitives
 * (spec/nn conv2dIm2col: slices, pads, a concat into the column matrix, a matmul, the bias add and
 * GELU as the fuser leaves them). Each case is a one-layer spec y = GELU(conv(x, w) + b) with loss
 * mean(y^2), x first scaled per channel by a parameter (except for stems) so that the step computes dx
 * too: `forward` (the plan's loss entry: the layer and the mean of squares, the loss read back) and
 * `trainStep` (forward + backward + the optimizer). The shapes
 * are the U-Net codec's of examples/transfusion_unet.ts (batch 32 of 16x16 digits, widths 32, 64),
 * the shapes U-Net's 32x32 RGB stem and output conv, and one larger (32x32, 64 -> 64 channels). Both variants of a
 * case are built and warmed first, then their runs alternate, so a change in load falls on both;
 * ratios are im2col / fused, median wall ms including the readback.
 *
 * Each timed sample submits `inFlight` runs back to back and then awaits their results, as the
 * training loop keeps steps in flight (runtime/train/in_flight.ts), and counts the time per run: an
 * awaited readback resolves no sooner than Deno's next device poll (~10-12 ms, runtime/executor.ts),
 * which, paid once per run, is most of a small case's time and would measure the poll, not the conv.
 * The depth is chosen per case from the warm-up (the same for both variants and entries): up to 8
 * runs, fewer as a run gets longer, 1 where the floor is a few percent of a run anyway. Even so a
 * small case's wall time keeps a floor of about a poll per 8 runs (~1.5 ms), so each entry is also
 * profiled (timestamp queries where the adapter has them): "kernel ms" is the summed GPU time of its
 * dispatches, median of the same number of profiles, the figure a kernel change moves.
 */
import { parseArgs } from "node:util";
import { compile } from "../../compiler/mod.ts";
import { describeAdapter, Executor, openDevice } from "../../runtime/mod.ts";
import { profileEntry } from "../../runtime/profile/mod.ts";
import { input, model, normal, ones, param, type Tensor, zeros } from "../../spec/mod.ts";
import { conv2d, conv2dIm2col, gelu } from "../../spec/nn/mod.ts";
import { report, type SuiteResult } from "../main.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean", default: false }, cases: { type: "string" } },
});
const handle = await openDevice();
const adapter = describeAdapter(handle);
const runs = values.quick ? 3 : 7;

interface Case {
  readonly name: string;
  readonly n: number;
  readonly side: number;
  readonly cin: number;
  readonly cout: number;
  readonly k: number;
  readonly stride?: number;
  /** Whether the step computes dx: not for a stem, whose input is the (noised) image itself. */
  readonly dx: boolean;
}
const ALL_CASES: Case[] = [
  { name: "unet stem 16x16 1->32", n: 32, side: 16, cin: 1, cout: 32, k: 3, dx: false },
  { name: "unet level1 16x16 32->32", n: 32, side: 16, cin: 32, cout: 32, k: 3, dx: true },
  { name: "unet level2 8x8 64->64", n: 32, side: 8, cin: 64, cout: 64, k: 3, dx: true },
  { name: "unet 1x1 8x8 32->64", n: 32, side: 8, cin: 32, cout: 64, k: 1, dx: true },
  { name: "unet out 16x16 32->1", n: 32, side: 16, cin: 32, cout: 1, k: 3, dx: true },
  { name: "shapes stem 32x32 3->32", n: 32, side: 32, cin: 3, cout: 32, k: 3, dx: false },
  { name: "shapes out 32x32 32->3", n: 32, side: 32, cin: 32, cout: 3, k: 3, dx: true },
  { name: "larger 32x32 64->64", n: 8, side: 32, cin: 64, cout: 64, k: 3, dx: true },
];
const wanted = values.cases?.split(",");
const CASES = ALL_CASES.filter((c) => !wanted || wanted.some((w) => c.name.startsWith(w)));

type Conv = typeof conv2d;
function convSpec(c: Case, conv: Conv, name: string) {
  const opts = { padding: (c.k - 1) / 2, stride: c.stride ?? 1 };
  // x scaled by a parameter where the case says, so the step computes dx as well as dw, as every
  // U-Net conv but the stem does.
  type P = { s: Tensor<"f32", 1>; w: Tensor<"f32", 4>; b: Tensor<"f32", 1> };
  const layer = (p: P, x: Tensor<"f32", 4>) =>
    gelu(conv(c.dx ? x.mul(p.s) as Tensor<"f32", 4> : x, p.w, opts).add(p.b) as Tensor<"f32", 4>);
  return model({
    name,
    config: {},
    dims: { batch: c.n },
    params: () => ({
      s: param([c.cin], ones()),
      w: param([c.k, c.k, c.cin, c.cout], normal(0.1)),
      b: param([c.cout], zeros()),
    }),
    inputs: () => ({ x: input("f32", ["batch", c.side, c.side, c.cin]) }),
    loss: (p, { x }) => ({ loss: layer(p, x as Tensor<"f32", 4>).square().mean() }),
    training: { steps: 1, lr: 1e-3 },
  });
}

/** Runs in flight per timed sample: about IN_FLIGHT_MS of work, at most MAX_IN_FLIGHT runs (see above). */
const IN_FLIGHT_MS = 250;
const MAX_IN_FLIGHT = 8;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const rows: SuiteResult["rows"] = [];
const ratios: Record<string, number> = {};
const VARIANTS = [{ variant: "fused conv2d", conv: conv2d }, {
  variant: "im2col + matmul",
  conv: conv2dIm2col,
}];
for (const c of CASES) {
  const x = Float32Array.from({ length: c.n * c.side * c.side * c.cin }, (_, i) => Math.sin(i * 0.37));
  const flops = 2 * c.n * c.side * c.side * c.k * c.k * c.cin * c.cout;
  const built = [];
  let warm = 0; // ms of the slower variant's awaited train step
  for (const { variant, conv } of VARIANTS) {
    const plan = compile(convSpec(c, conv, `conv_bench_${variant.split(" ")[0]}`), {
      adapterClass: adapter.adapterClass,
      adapterKey: adapter.cacheKey,
      entries: ["forward", "trainStep"],
    });
    const ex = await Executor.create(plan, { seed: 1, handle, lr: 1e-3 });
    await ex.run("forward", { x });
    await ex.run("trainStep", { x });
    const t0 = performance.now();
    await ex.run("trainStep", { x });
    warm = Math.max(warm, performance.now() - t0);
    const dispatches = (e: string) => plan.entries[e]!.steps.filter((s) => s.kind === "dispatch").length;
    built.push({
      variant,
      ex,
      dispatches: { forward: dispatches("forward"), trainStep: dispatches("trainStep") },
      forward: [] as number[],
      trainStep: [] as number[],
      kernels: { forward: [] as number[], trainStep: [] as number[] },
    });
  }
  const inFlight = Math.max(1, Math.min(MAX_IN_FLIGHT, Math.round(IN_FLIGHT_MS / warm)));
  for (let r = 0; r < runs; r++) {
    for (const b of built) {
      for (const entry of ["forward", "trainStep"] as const) {
        const t0 = performance.now();
        const submitted = [];
        for (let i = 0; i < inFlight; i++) submitted.push(await b.ex.submit(entry, { x }));
        for (const s of submitted) await s.results;
        b[entry].push((performance.now() - t0) / inFlight);
        const profile = await profileEntry(b.ex, entry, { x }, { warmup: 0 });
        b.kernels[entry].push(profile.dispatches.reduce((t, d) => t + d.durUs, 0) / 1000);
      }
    }
  }
  const ms = built.map((b) => ({
    forward: median(b.forward),
    trainStep: median(b.trainStep),
    forwardKernels: median(b.kernels.forward),
    stepKernels: median(b.kernels.trainStep),
  }));
  built.forEach((b, i) => {
    rows.push({
      case: c.name,
      variant: b.variant,
      "forward ms": ms[i]!.forward,
      "forward GFLOP/s": flops / ms[i]!.forward / 1e6,
      "fwd+bwd step ms": ms[i]!.trainStep,
      "forward kernel ms": ms[i]!.forwardKernels,
      "step kernel ms": ms[i]!.stepKernels,
      "fwd dispatches": b.dispatches.forward,
      "step dispatches": b.dispatches.trainStep,
      "runs in flight": inFlight,
    });
    b.ex.destroy();
  });
  ratios[`${c.name}: forward, im2col / fused`] = ms[1]!.forward / ms[0]!.forward;
  ratios[`${c.name}: fwd+bwd, im2col / fused`] = ms[1]!.trainStep / ms[0]!.trainStep;
  ratios[`${c.name}: forward kernels, im2col / fused`] = ms[1]!.forwardKernels / ms[0]!.forwardKernels;
  ratios[`${c.name}: fwd+bwd kernels, im2col / fused`] = ms[1]!.stepKernels / ms[0]!.stepKernels;
}
report({
  suite: "conv",
  rows,
  ratios,
  notes: [
    `adapter: ${adapter.name} (${adapter.adapterClass}); median of ${runs} alternating samples, readback ` +
    "included; a sample is `runs in flight` runs submitted back to back, timed per run",
    "layer: y = GELU(conv(x, w) + b), k x k 'same' padding; forward = the loss mean(y^2), read back; " +
    "fwd+bwd = trainStep (AdamW); kernel ms = the entry's summed dispatch GPU time, one profile per sample",
  ],
});
