/**
 * The sampler cores with plain TS functions standing in for the model (no GPU): an oracle that knows
 * the clean image must be denoised back to it by every sampler and target; guidance combines
 * conditional and unconditional rows as eps_u + w (eps_c - eps_u) from ONE call of 2K rows; greedy
 * decoding stops at EOS and at its budget; digit images survive the model frame and PNG files.
 */
import assert from "node:assert/strict";
import {
  type Denoiser,
  diffusionSampler,
  digitFromModelImage,
  digitFromPng,
  epsAndX0,
  fitSquare,
  gaussianNoise,
  greedyDecode,
  guide,
  type NoiseProcess,
  type PredictionTarget,
  type SamplerMethod,
  SamplingError,
  timestepSubsequence,
} from "../runtime/generate/mod.ts";
import { balancedIndices, mentionedDigit, wilsonInterval } from "../data/mod.ts";
import { diffusionSchedule } from "../spec/transfusion/schedule.ts";
import { digitImage, testDigits } from "../data/mnist_captions.ts";
import { MNIST_PIXELS } from "../data/mnist.ts";
import classifierSpec from "../examples/digit_classifier.ts";
import { decodePng, encodeGrayPng, encodePng } from "../runtime/png.ts";
import { imageGrid } from "../runtime/plots.ts";

const PER_ROW = 16;
/** A known "clean image" per row, in [-0.9, 0.9], different in every row and pixel. */
const clean = (rows: number) =>
  Float32Array.from({ length: rows * PER_ROW }, (_, i) => Math.sin(i * 1.7) * 0.9);

const cosine = diffusionSchedule({ schedule: "cosine", T: 100 });
const ddpm: NoiseProcess = { kind: "ddpm", alphaBar: cosine.alphaBar };

/** The exact prediction of `target` for x_t when the data is `x0` (what a perfect model outputs). */
function oracle(process: NoiseProcess, target: PredictionTarget, x0: Float32Array): Denoiser {
  return (xt, t, rows) => {
    const out = new Float32Array(rows * PER_ROW);
    for (let i = 0; i < out.length; i++) {
      const [x, c] = [xt[i]!, x0[i % x0.length]!];
      if (process.kind === "flow") {
        const eps = (x - (1 - t) * c) / t; // x_t = (1 - t) x0 + t eps
        out[i] = target === "velocity" ? eps - c : target === "eps" ? eps : c;
      } else {
        const ab = process.alphaBar[t]!;
        const eps = (x - Math.sqrt(ab) * c) / Math.sqrt(1 - ab);
        out[i] = target === "eps" ? eps : target === "x0" ? c : Math.sqrt(ab) * eps - Math.sqrt(1 - ab) * c;
      }
    }
    return Promise.resolve(out);
  };
}

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

Deno.test("an oracle denoiser is sampled back to the clean image", async (t) => {
  const cases: [NoiseProcess, PredictionTarget, SamplerMethod, number][] = [
    [ddpm, "eps", "ddpm", 100],
    [ddpm, "eps", "ddpm", 20],
    [ddpm, "eps", "ddim", 100],
    [ddpm, "eps", "ddim", 7],
    [ddpm, "v", "ddim", 10],
    [ddpm, "x0", "ddpm", 10],
    [{ kind: "flow" }, "velocity", "euler", 8],
    [{ kind: "flow" }, "velocity", "heun", 4],
  ];
  for (const [process, target, method, steps] of cases) {
    await t.step(`${process.kind} ${target} ${method} ${steps} steps`, async () => {
      const x0 = clean(3);
      const sampler = diffusionSampler({ process, target, method, steps, cfg: 1, seed: 5 });
      const out = await sampler.sample(oracle(process, target, x0), 3, PER_ROW);
      assert.ok(maxDiff(out, x0) < 1e-3, `max error ${maxDiff(out, x0)}`);
    });
  }
});

Deno.test("a model that always predicts zero noise does not recover the image (the check can fail)", async () => {
  const x0 = clean(2);
  const sampler = diffusionSampler({
    process: ddpm,
    target: "eps",
    method: "ddim",
    steps: 10,
    cfg: 1,
    seed: 1,
  });
  const out = await sampler.sample(
    (_x, _t, rows) => Promise.resolve(new Float32Array(rows * PER_ROW)),
    2,
    PER_ROW,
  );
  assert.ok(maxDiff(out, x0) > 0.1);
});

Deno.test("guidance: one call of 2K rows per step, conditional rows first, same x_t in both halves", async () => {
  const K = 3;
  const calls: { rows: number; t: number }[] = [];
  const denoiser: Denoiser = (xt, t, rows) => {
    calls.push({ rows, t });
    assert.equal(xt.length, rows * PER_ROW);
    const half = (rows / 2) * PER_ROW;
    assert.deepEqual(xt.subarray(0, half), xt.subarray(half));
    // x0 predictions: 0.5 for conditional rows, 0.1 for unconditional ones.
    return Promise.resolve(Float32Array.from({ length: rows * PER_ROW }, (_, i) => (i < half ? 0.5 : 0.1)));
  };
  const sampler = diffusionSampler({
    process: ddpm,
    target: "x0",
    method: "ddim",
    steps: 1,
    cfg: 1.5,
    seed: 0,
    clip: false,
  });
  assert.equal(sampler.rows(K), 2 * K);
  // One DDIM step from t = T-1 lands on the (guided) x0 prediction: 0.1 + 1.5 * (0.5 - 0.1) = 0.7.
  const out = await sampler.sample(denoiser, K, PER_ROW);
  assert.deepEqual(calls, [{ rows: 2 * K, t: 99 }]);
  for (const v of out) assert.ok(Math.abs(v - 0.7) < 1e-6, `${v}`);

  // Over 12 steps: 12 calls, each of 2K rows.
  const rowsSeen: number[] = [];
  const counting: Denoiser = (xt, t, rows) => {
    rowsSeen.push(rows);
    return oracle(ddpm, "eps", clean(rows))(xt, t, rows);
  };
  const ddim = diffusionSampler({ process: ddpm, target: "eps", method: "ddim", steps: 12, cfg: 3, seed: 0 });
  await ddim.sample(counting, K, PER_ROW);
  assert.deepEqual(rowsSeen, Array(12).fill(2 * K));
});

Deno.test("guidance weights 0 and 1 run K rows; the combination is uncond + w (cond - uncond)", async () => {
  for (const cfg of [0, 1]) {
    const sampler = diffusionSampler({
      process: ddpm,
      target: "eps",
      method: "ddim",
      steps: 3,
      cfg,
      seed: 0,
    });
    assert.equal(sampler.rows(4), 4);
    const seen: number[] = [];
    await sampler.sample(
      (_x, _t, rows) => (seen.push(rows), Promise.resolve(new Float32Array(rows * PER_ROW))),
      4,
      PER_ROW,
    );
    assert.deepEqual(seen, [4, 4, 4]);
  }
  const g = guide(Float32Array.of(1, 2, -1), Float32Array.of(0.5, 2, 1), 3);
  assert.deepEqual([...g], [0.5 + 3 * 0.5, 2, 1 + 3 * -2]);
  assert.throws(
    () => diffusionSampler({ process: ddpm, target: "eps", method: "ddim", steps: 3, cfg: -1, seed: 0 }),
    SamplingError,
  );
});

Deno.test("sampling is deterministic per seed and independent of chunking", async () => {
  const x0 = clean(4);
  /** Half the true noise for data rows from `first` on: an imperfect model, so the result depends on the noise. */
  const halfOracle = (first: number): Denoiser => (xt, t, rows) => {
    const ab = cosine.alphaBar[t]!;
    const out = new Float32Array(rows * PER_ROW);
    for (let i = 0; i < out.length; i++) {
      out[i] = (0.5 * (xt[i]! - Math.sqrt(ab) * x0[first * PER_ROW + i]!)) / Math.sqrt(1 - ab);
    }
    return Promise.resolve(out);
  };
  const make = (seed: number) =>
    diffusionSampler({ process: ddpm, target: "eps", method: "ddpm", steps: 10, cfg: 1, seed, clip: false });
  const a = await make(7).sample(halfOracle(0), 4, PER_ROW);
  const b = await make(7).sample(halfOracle(0), 4, PER_ROW);
  const c = await make(8).sample(halfOracle(0), 4, PER_ROW);
  assert.deepEqual(a, b);
  assert.ok(maxDiff(a, c) > 1e-2, `seeds 7 and 8 differ by ${maxDiff(a, c)}`);
  // Rows 2..3 alone, drawing noise from blocks 2..3, are rows 2..3 of the whole batch.
  const chunk = await make(7).sample(halfOracle(2), 2, PER_ROW, { firstRow: 2 });
  assert.ok(maxDiff(chunk, a.subarray(2 * PER_ROW)) < 1e-6);
  const unshifted = await make(7).sample(halfOracle(2), 2, PER_ROW);
  assert.ok(maxDiff(unshifted, a.subarray(2 * PER_ROW)) > 1e-2, "without firstRow the noise differs");
});

Deno.test("sampler options are checked", () => {
  assert.throws(
    () => diffusionSampler({ process: ddpm, target: "eps", method: "euler", steps: 5, cfg: 1, seed: 0 }),
    /euler.*ddpm model; use ddpm or ddim/,
  );
  assert.throws(
    () =>
      diffusionSampler({
        process: { kind: "flow" },
        target: "velocity",
        method: "ddim",
        steps: 5,
        cfg: 1,
        seed: 0,
      }),
    /use euler or heun/,
  );
  assert.throws(
    () => diffusionSampler({ process: ddpm, target: "eps", method: "ddim", steps: 101, cfg: 1, seed: 0 }),
    /1\.\.100/,
  );
});

Deno.test("timestep subsequences run from T-1 to 0, strictly decreasing", () => {
  for (const [T, steps] of [[1000, 50], [1000, 1000], [10, 3], [7, 2]] as const) {
    const s = timestepSubsequence(T, steps);
    assert.equal(s.length, steps);
    assert.equal(s[0], T - 1);
    assert.equal(s.at(-1), 0);
    for (let i = 1; i < s.length; i++) assert.ok(s[i]! < s[i - 1]!);
  }
  assert.deepEqual(timestepSubsequence(10, 1), [9]);
  assert.throws(() => timestepSubsequence(10, 0), SamplingError);
});

Deno.test("eps, v and x0 predictions convert to the same eps and x0", () => {
  const ab = 0.37;
  const [a, s] = [Math.sqrt(ab), Math.sqrt(1 - ab)];
  const x0 = Float32Array.of(0.5, -0.25, 0.9);
  const eps = Float32Array.of(1.2, -0.3, 0.05);
  const xt = x0.map((v, i) => a * v + s * eps[i]!);
  const v = x0.map((c, i) => a * eps[i]! - s * c);
  for (const [target, pred] of [["eps", eps], ["x0", x0], ["v", v]] as const) {
    const got = epsAndX0(target, pred, xt, ab);
    assert.ok(maxDiff(got.eps, eps) < 1e-5 && maxDiff(got.x0, x0) < 1e-5, target);
  }
});

Deno.test("seeded noise is standard normal and a pure function of (seed, stream, index)", () => {
  const n = gaussianNoise(3, 0, 20000);
  const mean = n.reduce((s, v) => s + v, 0) / n.length;
  const variance = n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05, `mean ${mean} var ${variance}`);
  assert.deepEqual(gaussianNoise(3, 0, 10, 5), n.subarray(5, 15));
  assert.notDeepEqual(gaussianNoise(3, 1, 10), n.subarray(0, 10));
});

Deno.test("greedy decoding stops at EOS, at a stop token and at the budget", async () => {
  const EOS = 9;
  const vocab = 10;
  // Row scripts: row 0 says 1 2 3 EOS, row 1 says 4 forever, row 2 stops at once.
  const scripts = [[1, 2, 3, EOS], [4, 4, 4, 4, 4, 4, 4, 4], [EOS]];
  let calls = 0;
  const next = (generated: readonly (readonly number[])[]) => {
    calls++;
    const scores = new Float32Array(generated.length * vocab).fill(-1);
    generated.forEach((g, b) => {
      scores[b * vocab + (scripts[b]![g.length] ?? EOS)] = 5;
    });
    return Promise.resolve(scores);
  };
  const out = await greedyDecode(next, { rows: 3, vocab, budget: 5, stop: (id) => id === EOS });
  assert.deepEqual(out, [[1, 2, 3], [4, 4, 4, 4, 4], []]);
  assert.equal(calls, 5, "the budget ends the last row after 5 calls");

  calls = 0;
  const short = await greedyDecode(next, {
    rows: 3,
    vocab,
    budget: 10,
    stop: (id) => id === EOS || id === 3,
  });
  assert.deepEqual(short[0], [1, 2]);
  assert.deepEqual(short[1], [4, 4, 4, 4, 4, 4, 4, 4]);
  assert.equal(calls, 9, "row 1 runs out of script after 8 tokens and then says EOS");
  assert.deepEqual(await greedyDecode(next, { rows: 3, vocab, budget: 0, stop: () => false }), [[], [], []]);
});

Deno.test("the first digit a caption mentions", () => {
  assert.equal(mentionedDigit("a handwritten digit 7"), 7);
  assert.equal(mentionedDigit("the number Three"), 3);
  assert.equal(mentionedDigit("someone wrote nine, not 4"), 9);
  assert.equal(mentionedDigit("none here, no one"), 1);
  assert.equal(mentionedDigit("nothing"), undefined);
});

Deno.test("digits go into the model frame and back unchanged", () => {
  const test = testDigits();
  for (const size of [32, 28, 14]) {
    for (const i of [0, 7]) {
      const original = test.images.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
      const back = digitFromModelImage(digitImage(test, i, { size, channels: 2 }), size, 2);
      if (size >= 28) assert.ok(maxDiff(back, original) < 1e-5, `size ${size}`);
      else {
        // 2x2 blocks: the mean of each block survives.
        const blockMean = (img: Float32Array, y: number, x: number) =>
          (img[y * 28 + x]! + img[y * 28 + x + 1]! + img[(y + 1) * 28 + x]! + img[(y + 1) * 28 + x + 1]!) / 4;
        for (let y = 0; y < 28; y += 2) {
          for (let x = 0; x < 28; x += 2) {
            assert.ok(Math.abs(blockMean(back, y, x) - blockMean(original, y, x)) < 1e-5);
          }
        }
      }
    }
  }
});

Deno.test("PNG digits: light pictures are inverted, any size is fitted to 28x28", () => {
  // A 56x56 white page with a dark 20x20 square in the middle.
  const big = new Float32Array(56 * 56).fill(1);
  for (let y = 18; y < 38; y++) for (let x = 18; x < 38; x++) big[y * 56 + x] = 0;
  const d = digitFromPng(encodeGrayPng(big, 56, 56), "page.png");
  assert.ok(d.inverted);
  assert.equal(d.pixels.length, 28 * 28);
  assert.equal(d.pixels[0], 0);
  assert.ok(Math.abs(d.pixels[14 * 28 + 14]! - 1) < 1e-6);
  // A wide 30x10 bright bar keeps its aspect ratio: 28 wide, about 9 tall, centered.
  const bar = new Float32Array(30 * 10).fill(0.2);
  const fitted = fitSquare(bar, 30, 10, 28);
  const rows = [...Array(28).keys()].filter((y) => fitted[y * 28 + 14]! > 0);
  assert.equal(rows.length, 9);
  assert.ok(Math.abs(fitted[rows[0]! * 28 + 3]! - 0.2) < 1e-6);
  assert.throws(() => digitFromPng(new TextEncoder().encode("not a png"), "x.txt"), /x\.txt: not a PNG/);
});

Deno.test("a sample grid PNG decodes to the grid's size and pixels", () => {
  const images = [clean(1).map((v) => (v + 1) / 2), new Float32Array(16).fill(1)].map((x) =>
    x.subarray(0, 16)
  );
  const grid = imageGrid(images, 4, 4, 2, { range: "unit" });
  const decoded = decodePng(encodePng(grid.rgba, grid.width, grid.height), "grid.png");
  assert.equal(decoded.width, 2 * 4 + 3 * 2);
  assert.deepEqual(decoded.rgba, grid.rgba);
});

Deno.test("held-out digits for captioning take the classes in turn", () => {
  const labels = testDigits().labels;
  const picked = balancedIndices(labels, 25);
  assert.deepEqual(picked.slice(0, 10).map((i) => labels[i]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(new Set(picked).size, 25);
  assert.deepEqual(balancedIndices(Int32Array.of(3, 3, 1), 5), [2, 0, 1]);
});

Deno.test("the digit classifier's data: batches fit its inputs, reproducible per (seed, step)", () => {
  const source = classifierSpec.data!(classifierSpec.config as never, { batch: 16 });
  const a = source.batch(3, 1) as { x: Float32Array; y: Int32Array };
  const b = source.batch(3, 1) as { x: Float32Array; y: Int32Array };
  const c = source.batch(4, 1) as { x: Float32Array; y: Int32Array };
  assert.equal(a.x.length, 16 * MNIST_PIXELS);
  assert.equal(a.y.length, 16);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.x, c.x);
  assert.ok(a.x.every((v) => v >= 0 && v <= 1) && a.y.every((v) => v >= 0 && v <= 9));
  const held = source.evalBatch!(0) as { x: Float32Array; y: Int32Array };
  const test = testDigits();
  assert.deepEqual(held.x.subarray(0, MNIST_PIXELS), test.images.subarray(0, MNIST_PIXELS));
});

Deno.test("eval intervals: the 95% Wilson score interval of a proportion", () => {
  const near = (got: readonly number[], want: readonly number[]) =>
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < 1e-4, `${got} vs ${want}`));
  near(wilsonInterval(50, 100), [0.4038, 0.5962]);
  near(wilsonInterval(0, 10), [0, 0.2775]);
  near(wilsonInterval(10, 10), [0.7225, 1]);
  near(wilsonInterval(95, 100), [0.8882, 0.9785]);
  assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
});
