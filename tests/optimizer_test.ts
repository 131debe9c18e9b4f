import assert from "node:assert/strict";
import {
  adamwKernel,
  decayMaskWords,
  gradNormKernels,
  gradNormScratchWords,
  SCALAR_COUNT,
  SCALARS,
} from "../kernels/optimizer.ts";
import { learningRate } from "../runtime/schedule.ts";
import { initParams } from "../runtime/init.ts";
import type { ParamLayout } from "../compiler/plan.ts";
import { runKernel } from "./gpu_harness.ts";

/** Deterministic test data (mulberry32 + Box-Muller), independent of the code under test. */
function normals(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return Float32Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next()),
  );
}

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clipNorm: number;
}

/** Plain AdamW with global-norm clipping, in f64. Returns the gradient norm. */
function adamwReference(
  s: { p: Float64Array; m: Float64Array; v: Float64Array },
  grads: Float32Array,
  t: number,
  h: Hyper,
  decays: (i: number) => boolean,
): number {
  const norm = Math.sqrt(grads.reduce((acc, g) => acc + g * g, 0));
  const scale = h.clipNorm > 0 ? Math.min(1, h.clipNorm / (norm + 1e-6)) : 1;
  for (let i = 0; i < grads.length; i++) {
    const g = grads[i]! * scale;
    const m = h.beta1 * s.m[i]! + (1 - h.beta1) * g;
    const v = h.beta2 * s.v[i]! + (1 - h.beta2) * g * g;
    s.m[i] = m;
    s.v[i] = v;
    const update = m / (1 - h.beta1 ** t) / (Math.sqrt(v / (1 - h.beta2 ** t)) + h.eps);
    s.p[i] = s.p[i]! - h.lr * (update + (decays(i) ? h.weightDecay * s.p[i]! : 0));
  }
  return norm;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const [a, e] = [actual[i]!, expected[i]!];
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

/** Runs grad-norm + AdamW on the GPU for `steps` steps and compares with the reference after each. */
async function checkAdamw(count: number, clipNorm: number) {
  const h: Hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm };
  // decay on [0, a) and [b, count), none on [a, b); element `frozen` (no decay) never gets a gradient
  const [a, b] = [Math.floor(count * 0.3), Math.floor(count * 0.6)];
  const [frozen, shrunk] = [a + 7, b + 3];
  const layout = [
    { offset: 0, shape: [a], decay: true },
    { offset: a, shape: [b - a], decay: false },
    { offset: b, shape: [count - b], decay: true },
  ];
  const mask = decayMaskWords(layout, count);
  const decays = (i: number) => i < a || i >= b;
  const scratchOffset = 5;
  const [partials, finish] = gradNormKernels(count, scratchOffset);
  const adamw = adamwKernel(count);

  const start = normals(count, 1);
  let params = start.slice();
  let m = new Float32Array(count);
  let v = new Float32Array(count);
  const ref = { p: Float64Array.from(start), m: new Float64Array(count), v: new Float64Array(count) };
  const act = new Uint32Array(scratchOffset + gradNormScratchWords(count) + 3);
  for (let t = 1; t <= 3; t++) {
    const grads = normals(count, 100 + t);
    grads[frozen] = 0;
    grads[shrunk] = 0;
    h.lr = 1e-2 / t;
    const scalars = new Float32Array(SCALAR_COUNT);
    scalars[SCALARS.lr] = h.lr;
    scalars[SCALARS.beta1] = h.beta1;
    scalars[SCALARS.beta2] = h.beta2;
    scalars[SCALARS.eps] = h.eps;
    scalars[SCALARS.weightDecay] = h.weightDecay;
    scalars[SCALARS.bc1] = 1 - h.beta1 ** t;
    scalars[SCALARS.bc2] = 1 - h.beta2 ** t;
    scalars[SCALARS.clipNorm] = clipNorm;
    scalars[SCALARS.clipScale] = Number.NaN; // the finish pass must overwrite it

    const withPartials = new Uint32Array((await runKernel(partials!, { grads, act }, ["act"])).act!);
    assert.deepEqual(
      withPartials.subarray(0, scratchOffset),
      act.subarray(0, scratchOffset),
      "scratch offset",
    );
    const after = new Float32Array(
      (await runKernel(finish!, { act: withPartials, scalars }, ["scalars"])).scalars!,
    );
    const buffers = { params, grads, adam_m: m, adam_v: v, scalars: after, decay_mask: mask };
    const out = await runKernel(adamw, buffers, ["params", "adam_m", "adam_v"]);
    const before = params;
    [params, m, v] = [
      new Float32Array(out.params!),
      new Float32Array(out.adam_m!),
      new Float32Array(out.adam_v!),
    ];

    const norm = adamwReference(ref, grads, t, h, decays);
    const where = `count ${count}, clip ${clipNorm}, step ${t}`;
    assertClose([after[SCALARS.gradNorm]!], [norm], 1e-5, `${where} grad norm`);
    const scale = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
    if (clipNorm > 0) assert.ok(scale < 0.5, `${where}: clipping should be active`);
    assertClose([after[SCALARS.clipScale]!], [scale], 1e-5, `${where} clip scale`);
    assertClose(m, ref.m, 1e-5, `${where} m`);
    assertClose(v, ref.v, 1e-5, `${where} v`);
    assertClose(params, ref.p, 1e-5, `${where} params`);
    assert.equal(params[frozen], start[frozen], `${where}: no-decay element without gradient must not move`);
    assertClose(
      [params[shrunk]!],
      [before[shrunk]! * (1 - h.lr * h.weightDecay)],
      1e-6,
      `${where} pure decay`,
    );
  }
}

Deno.test("adamw and grad norm match the reference", async (t) => {
  for (const count of [1000, 70001]) {
    for (const clip of [0, 1]) {
      await t.step(`count ${count}, clip ${clip}`, () => checkAdamw(count, clip));
    }
  }
});

Deno.test("decay mask sets exactly the decayed elements' bits", () => {
  const layout = [
    { offset: 0, shape: [3, 11], decay: true },
    { offset: 33, shape: [30], decay: false },
    { offset: 63, shape: [2, 2], decay: true },
  ];
  const words = decayMaskWords(layout, 70);
  assert.equal(words.length, 3);
  for (let i = 0; i < 96; i++) {
    const bit = (words[i >>> 5]! >>> (i & 31)) & 1;
    assert.equal(bit, i < 33 || (i >= 63 && i < 67) ? 1 : 0, `bit ${i}`);
  }
  assert.throws(() => decayMaskWords([{ offset: 60, shape: [20], decay: true }], 70), /overruns 70/);
});

Deno.test("learningRate: warmup, cosine, floor", () => {
  const s = { peak: 1e-3, warmup: 10, total: 110, floor: 1e-4 };
  const cases: [number, number][] = [
    [0, 1e-4], // peak / warmup
    [4, 5e-4],
    [9, 1e-3],
    [10, 1e-3], // cosine starts at the peak
    [35, 1e-4 + 0.9e-3 * (1 + Math.SQRT1_2) / 2], // a quarter of the way: cos(pi/4)
    [60, 5.5e-4], // half way: the mean of peak and floor
    [85, 1e-4 + 0.9e-3 * (1 - Math.SQRT1_2) / 2],
    [110, 1e-4],
    [5000, 1e-4],
  ];
  for (const [step, expected] of cases) {
    assertClose([learningRate(step, s)], [expected], 1e-12, `step ${step}`);
  }
  assert.equal(learningRate(0, { ...s, warmup: 0 }), 1e-3);
  for (let step = 11; step < 110; step++) {
    assert.ok(learningRate(step, s) < learningRate(step - 1, s), `decreasing at ${step}`);
  }
  assert.throws(() => learningRate(-1, s), /non-negative integer, got -1/);
  assert.throws(() => learningRate(1.5, s), /got 1.5/);
});

Deno.test("initParams: deterministic, right statistics, exact constants", () => {
  const param = (path: string, offset: number, shape: number[], init: ParamLayout["init"]): ParamLayout => ({
    path,
    shape,
    dtype: "f32",
    offset,
    init,
    decay: true,
    frozen: false,
  });
  const layout = [
    param("w", 0, [100, 200], { kind: "normal", std: 0.02 }),
    param("u", 20000, [10000], { kind: "uniform", bound: 0.5 }),
    param("z", 30000, [100], { kind: "zeros" }),
    param("o", 30100, [7, 7], { kind: "ones" }),
  ];
  const count = 30149 + 3; // a gap at the end stays zero
  const a = initParams(layout, count, 42);
  assert.deepEqual(a, initParams(layout, count, 42), "same seed, same values");
  assert.notDeepEqual(a.subarray(0, 20000), initParams(layout, count, 43).subarray(0, 20000), "seed matters");

  const w = a.subarray(0, 20000);
  const mean = w.reduce((s, x) => s + x, 0) / w.length;
  const std = Math.sqrt(w.reduce((s, x) => s + (x - mean) ** 2, 0) / w.length);
  assert.ok(Math.abs(mean) < 4 * 0.02 / Math.sqrt(w.length), `normal mean ${mean}`);
  assert.ok(Math.abs(std / 0.02 - 1) < 0.03, `normal std ${std}`);

  const u = a.subarray(20000, 30000);
  assert.ok(u.every((x) => x >= -0.5 && x < 0.5), "uniform within its bound");
  const ustd = Math.sqrt(u.reduce((s, x) => s + x * x, 0) / u.length);
  assert.ok(Math.abs(ustd / (0.5 / Math.sqrt(3)) - 1) < 0.03, `uniform std ${ustd}`);

  assert.ok(a.subarray(30000, 30100).every((x) => x === 0), "zeros");
  assert.ok(a.subarray(30100, 30149).every((x) => x === 1), "ones");
  assert.ok(a.subarray(30149).every((x) => x === 0), "gap");

  // values depend on (seed, parameter index), not on where the parameter sits
  const moved = initParams([{ ...layout[0]!, offset: 5 }], 20005, 42);
  assert.deepEqual(moved.subarray(5), w);
  assert.throws(() => initParams(layout, 30000, 42), /"z" \[100\] at offset 30000 overruns 30000/);
});
