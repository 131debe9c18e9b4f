import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { node, SpecError } from "../compiler/ir/mod.ts";
import { avgPool2d, conv2d, conv2dIm2col, groupNorm, Tensor, upsampleNearest } from "../spec/mod.ts";
import { conv2dRef, seededRandom } from "./fixtures/conv_reference.ts";

const rand = seededRandom(77);
const randn = (n: number) => Array.from({ length: n }, () => rand() * 2 - 1);

function input<const S extends readonly number[]>(name: string, shape: S) {
  return new Tensor<"f32", S["length"]>(node("input", [], { name, shape, dtype: "f32" }));
}
function run(t: Tensor, inputs: Record<string, ArrayLike<number>>): number[] {
  return Array.from(interpret([t.node], { inputs, params: {} })[0]!.data);
}
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-9) {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < actual.length; i++) {
    const [a, e] = [actual[i]!, expected[i]!];
    assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `element ${i}: ${a} vs expected ${e}`);
  }
}

Deno.test("conv2d: a hand-computed 3x3 image, 2x2 kernel, padding 1", () => {
  // x (one channel): 1 2 3 / 4 5 6 / 7 8 9; w: [[1, 0], [0, -1]] (top-left minus bottom-right).
  const x = input("x", [1, 3, 3, 1]);
  const w = input("w", [2, 2, 1, 1]);
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const ws = [1, 0, 0, -1];
  // out[i][j] = xp[i][j] - xp[i+1][j+1] on the zero-padded 5x5 image; 4x4 output.
  const want = [
    -1,
    -2,
    -3,
    0, //
    -4,
    -4,
    -4,
    3,
    -7,
    -4,
    -4,
    6,
    0,
    7,
    8,
    9,
  ];
  for (const f of [conv2d, conv2dIm2col]) {
    const y = f(x, w, { padding: 1 });
    assert.deepEqual(y.shape, [1, 4, 4, 1]);
    assertClose(run(y, { x: xs, w: ws }), want);
  }
  // stride 2 keeps rows/columns 0 and 2 of that output
  const s2 = conv2d(x, w, { padding: 1, stride: 2 });
  assert.deepEqual(s2.shape, [1, 2, 2, 1]);
  assertClose(run(s2, { x: xs, w: ws }), [-1, -3, -7, -4]);
});

Deno.test("conv2d matches a direct loop reference (stride, padding, groups, channels)", async (t) => {
  const cases = [
    { n: 2, h: 5, w: 6, cin: 3, cout: 4, k: 3, stride: 1, padding: 1, groups: 1 },
    { n: 1, h: 7, w: 7, cin: 4, cout: 6, k: 3, stride: 2, padding: 1, groups: 2 },
    { n: 2, h: 6, w: 5, cin: 4, cout: 4, k: 3, stride: 2, padding: 0, groups: 4 }, // depthwise
    { n: 1, h: 4, w: 4, cin: 2, cout: 3, k: 1, stride: 1, padding: 0, groups: 1 },
    { n: 1, h: 8, w: 8, cin: 2, cout: 2, k: 4, stride: 3, padding: 2, groups: 1 },
  ];
  for (const c of cases) {
    await t.step(JSON.stringify(c), () => {
      const xs = randn(c.n * c.h * c.w * c.cin);
      const ws = randn(c.k * c.k * (c.cin / c.groups) * c.cout);
      const x = input("x", [c.n, c.h, c.w, c.cin]);
      const w = input("w", [c.k, c.k, c.cin / c.groups, c.cout]);
      const opts = { stride: c.stride, padding: c.padding, groups: c.groups };
      const ref = conv2dRef(xs, ws, [c.n, c.h, c.w, c.cin], [c.k, c.k, c.cin / c.groups, c.cout], opts);
      const y = conv2d(x, w, opts);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(run(y, { x: xs, w: ws }), ref.data);
      assertClose(run(conv2dIm2col(x, w, opts), { x: xs, w: ws }), ref.data);
    });
  }
});

Deno.test("conv2d: bad shapes name the value and the caller's line", () => {
  const x = input("x", [2, 8, 8, 4]);
  const expectError = (f: () => unknown, pattern: RegExp) => {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof SpecError, `${e}`);
      assert.match(e.message, pattern);
      assert.match(e.message, /at tests\/conv_spec_test\.ts:\d+/);
      return true;
    });
  };
  expectError(() => conv2d(x, input("w", [3, 3, 3, 8])), /w \[3, 3, 3, 8\].*Cin\/groups = 4\/1 = 4.*got 3/);
  expectError(
    () => conv2d(x, input("w", [3, 3, 4, 6]), { groups: 2 }),
    /w \[3, 3, 4, 6\].*Cin\/groups = 4\/2 = 2.*got 4/,
  );
  expectError(() => conv2d(x, input("w", [3, 3, 4, 8]), { groups: 3 }), /groups 3 must divide Cin 4/);
  expectError(
    () => conv2d(x, input("w", [3, 3, 4, 8]), { stride: 0 }),
    /stride must be an integer >= 1, got 0/,
  );
  expectError(() => conv2d(x, input("w", [9, 9, 4, 8])), /kernel 9x9 is larger than the padded input 8x8/);
  expectError(
    () => conv2d(input("x3", [8, 8, 4]) as never, input("w", [3, 3, 4, 8])),
    /x must be NHWC \[N, H, W, Cin\], got \[8, 8, 4\]/,
  );
  expectError(() => groupNorm(x, 3), /groups must be a positive divisor of C = 4.*got 3/);
  expectError(() => groupNorm(x, 2, { scale: input("s", [3]) }), /scale must be \[4\].*got \[3\]/);
  expectError(() => avgPool2d(x, 3), /k must be a positive integer dividing H = 8 and W = 8.*got 3/);
  expectError(() => upsampleNearest(x, 0), /factor must be an integer >= 1, got 0/);
});

Deno.test("groupNorm: each (sample, group) has mean 0 and variance 1, then scale and bias", () => {
  const [n, h, w, c, g] = [2, 3, 2, 6, 3];
  const xs = randn(n * h * w * c).map((v, i) => v * 3 + (i % c)); // channels at different offsets
  const scale = randn(c);
  const bias = randn(c);
  const eps = 1e-5;
  const x = input("x", [n, h, w, c]);
  const got = run(groupNorm(x, g, { scale: input("s", [c]), bias: input("b", [c]), eps }), {
    x: xs,
    s: scale,
    b: bias,
  });
  const want = new Array<number>(xs.length);
  const cg = c / g;
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < g; gi++) {
      const at: number[] = [];
      for (let p = 0; p < h * w; p++) {
        for (let ci = 0; ci < cg; ci++) at.push((b * h * w + p) * c + gi * cg + ci);
      }
      const mean = at.reduce((s, i) => s + xs[i]!, 0) / at.length;
      const variance = at.reduce((s, i) => s + (xs[i]! - mean) ** 2, 0) / at.length;
      for (const i of at) {
        want[i] = ((xs[i]! - mean) / Math.sqrt(variance + eps)) * scale[i % c]! + bias[i % c]!;
      }
    }
  }
  assertClose(got, want);
  // without scale/bias: unit statistics per group
  const plain = run(groupNorm(x, g, { eps: 0 }), { x: xs });
  const group0 = [0, 1, 6, 7, 12, 13, 18, 19, 24, 25, 30, 31]; // sample 0, channels 0..1, all 6 pixels
  const mean = group0.reduce((s, i) => s + plain[i]!, 0) / 12;
  const variance = group0.reduce((s, i) => s + plain[i]! ** 2, 0) / 12;
  assertClose([mean, variance], [0, 1], 1e-12);
});

Deno.test("upsampleNearest and avgPool2d: hand-computed values, and pooling undoes upsampling", () => {
  const x = input("x", [1, 2, 2, 2]);
  // pixel (i, j) channel c = 10 * (2i + j) + c
  const xs = [0, 1, 10, 11, 20, 21, 30, 31];
  const up = upsampleNearest(x, 2);
  assert.deepEqual(up.shape, [1, 4, 4, 2]);
  const got = run(up, { x: xs });
  const px = (i: number, j: number) => got.slice((i * 4 + j) * 2, (i * 4 + j) * 2 + 2);
  assert.deepEqual(px(0, 0), [0, 1]);
  assert.deepEqual(px(1, 1), [0, 1]);
  assert.deepEqual(px(0, 3), [10, 11]);
  assert.deepEqual(px(3, 0), [20, 21]);
  assert.deepEqual(px(2, 2), [30, 31]);
  assertClose(run(avgPool2d(up, 2), { x: xs }), xs);
  const pooled = avgPool2d(x, 2);
  assert.deepEqual(pooled.shape, [1, 1, 1, 2]);
  assertClose(run(pooled, { x: xs }), [15, 16]);
});
