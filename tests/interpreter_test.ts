import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { ALL_OPS, type DType, type Node, node, type Op, SpecError } from "../compiler/ir/mod.ts";
import { philox } from "../compiler/philox.ts";
import { verify } from "../compiler/verify.ts";

// Every expected array below was worked out by hand (or is a published constant), never printed
// from the interpreter. The last test fails when an op in the registry has no case here.

const inputs: Record<string, number[]> = {};
const covered = new Set<Op>();

/** A named input leaf holding `data` (row-major). */
function t(dtype: DType, shape: number[], data: number[]): Node {
  const name = `v${Object.keys(inputs).length}`;
  inputs[name] = data;
  return node("input", [], { name, shape, dtype });
}
const f32 = (shape: number[], data: number[]) => t("f32", shape, data);
const i32 = (shape: number[], data: number[]) => t("i32", shape, data);
const u32 = (shape: number[], data: number[]) => t("u32", shape, data);
const bool = (shape: number[], data: number[]) => t("bool", shape, data);

function run(out: Node): Float64Array {
  return interpret([out], { inputs })[0]!.data;
}

function same(actual: number, expected: number, tol: number): boolean {
  if (!Number.isFinite(expected)) return Object.is(actual, expected);
  return Math.abs(actual - expected) <= tol;
}

/** Interprets `out`, records its op as covered and checks its type and every element. */
function expect(out: Node, dtype: DType, shape: number[], data: readonly number[], tol = 0) {
  covered.add(out.op);
  verify([out]);
  assert.equal(out.dtype, dtype, `${out.op}: dtype`);
  assert.deepEqual(out.shape, shape, `${out.op}: shape`);
  const got = run(out);
  assert.equal(got.length, data.length, `${out.op}: element count`);
  data.forEach((e, i) => {
    assert.ok(same(got[i]!, e, tol), `${out.op}[${i}]: got ${got[i]}, expected ${e} (tol ${tol})`);
  });
}

const unary = (op: Op, x: Node) => node(op as "neg", [x], null);
const binary = (op: Op, a: Node, b: Node) => node(op as "add", [a, b], null);

Deno.test("interpreter: every op against hand-computed values", async (s) => {
  await s.step("leaves: input, param, const, iota", () => {
    expect(f32([2, 2], [1, 2, 3, 4]), "f32", [2, 2], [1, 2, 3, 4]);
    const w = node("param", [], { path: "layer.w", shape: [3], dtype: "f32" });
    covered.add("param");
    assert.deepEqual([...interpret([w], { params: { "layer.w": [0.5, -1, 2] } })[0]!.data], [0.5, -1, 2]);
    assert.throws(() => interpret([w], {}), (e) => e instanceof SpecError && /layer\.w/.test(e.message));
    assert.throws(() => interpret([w], { params: { "layer.w": [1] } }), /1 elements, expected \[3\]/);
    expect(node("const", [], { value: 2.5, shape: [2, 2], dtype: "f32" }), "f32", [2, 2], [
      2.5,
      2.5,
      2.5,
      2.5,
    ]);
    expect(node("const", [], { value: -3.7, shape: [2], dtype: "i32" }), "i32", [2], [-3, -3]);
    expect(node("iota", [], { shape: [2, 3], axis: 1, dtype: "i32" }), "i32", [2, 3], [0, 1, 2, 0, 1, 2]);
    expect(node("iota", [], { shape: [2, 3], axis: 0, dtype: "f32" }), "f32", [2, 3], [0, 0, 0, 1, 1, 1]);
  });

  await s.step("unary math", () => {
    expect(unary("neg", f32([3], [1, -2, 0])), "f32", [3], [-1, 2, 0]);
    expect(unary("neg", i32([1], [-2147483648])), "i32", [1], [-2147483648]); // wraps like two's complement
    expect(unary("exp", f32([3], [0, 1, -1])), "f32", [3], [1, Math.E, 0.36787944117144233], 1e-15);
    expect(
      unary("log", f32([4], [1, Math.E, 0.5, 0])),
      "f32",
      [4],
      [0, 1, -0.6931471805599453, -Infinity],
      1e-15,
    );
    expect(unary("sqrt", f32([3], [4, 2, 0])), "f32", [3], [2, Math.SQRT2, 0], 1e-15);
    expect(unary("rsqrt", f32([3], [4, 0.25, 0])), "f32", [3], [0.5, 2, Infinity], 1e-15);
    expect(
      unary("tanh", f32([3], [0, 0.5, -1])),
      "f32",
      [3],
      [0, 0.46211715726000974, -0.7615941559557649],
      1e-15,
    );
    // sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4
    expect(unary("sigmoid", f32([3], [0, Math.log(3), -Math.log(3)])), "f32", [3], [0.5, 0.75, 0.25], 1e-15);
    expect(unary("sin", f32([3], [0, Math.PI / 2, Math.PI / 6])), "f32", [3], [0, 1, 0.5], 1e-15);
    expect(unary("cos", f32([3], [0, Math.PI, Math.PI / 3])), "f32", [3], [1, -1, 0.5], 1e-15);
    expect(unary("abs", f32([3], [-1.5, 2, -0])), "f32", [3], [1.5, 2, 0]);
    expect(unary("abs", i32([2], [-3, 4])), "i32", [2], [3, 4]);
    expect(unary("not", bool([2], [1, 0])), "bool", [2], [0, 1]);
  });

  await s.step("erf to 1e-12 against tabulated values (both the series and the continued fraction)", () => {
    const x = [0, 0.1, 0.5, 1, -1, 2, 2.5, 3, 4, -6];
    const erf = [
      0,
      0.1124629160182849,
      0.5204998778130465,
      0.8427007929497149,
      -0.8427007929497149,
      0.9953222650189527,
      0.9995930479825550,
      0.9999779095030014,
      0.9999999845827421,
      -1,
    ];
    expect(unary("erf", f32([x.length], x)), "f32", [x.length], erf, 1e-12);
  });

  await s.step("cast", () => {
    // f32 -> i32 truncates toward zero
    expect(node("cast", [f32([4], [1.7, -1.7, 2.5, -0.5])], { dtype: "i32" }), "i32", [4], [1, -1, 2, 0]);
    expect(node("cast", [f32([3], [0, 0.5, -2])], { dtype: "bool" }), "bool", [3], [0, 1, 1]);
    expect(node("cast", [i32([2], [-3, 7])], { dtype: "f32" }), "f32", [2], [-3, 7]);
    // u32 -> i32 keeps the bits: 2^32 - 1 is -1
    expect(node("cast", [u32([2], [4294967295, 5])], { dtype: "i32" }), "i32", [2], [-1, 5]);
  });

  await s.step("binary arithmetic, with i32/u32 wrap-around", () => {
    expect(binary("add", f32([2], [1, 2.5]), f32([2], [3, -4])), "f32", [2], [4, -1.5]);
    expect(binary("add", i32([2], [2147483647, -2147483648]), i32([2], [1, -1])), "i32", [2], [
      -2147483648,
      2147483647,
    ]);
    expect(binary("sub", f32([2], [5, 1]), f32([2], [2, 3])), "f32", [2], [3, -2]);
    expect(binary("sub", u32([2], [0, 7]), u32([2], [1, 2])), "u32", [2], [4294967295, 5]);
    expect(binary("mul", f32([2], [1.5, 2]), f32([2], [2, -3])), "f32", [2], [3, -6]);
    // 65536^2 = 2^32 wraps to 0; 46341^2 = 2147488281 wraps to 2147488281 - 2^32
    expect(binary("mul", i32([3], [65536, 46341, -7]), i32([3], [65536, 46341, 6])), "i32", [3], [
      0,
      -2147479015,
      -42,
    ]);
    expect(binary("mul", u32([1], [4294967295]), u32([1], [2])), "u32", [1], [4294967294]);
    expect(binary("div", f32([4], [1, 1, -1, 0]), f32([4], [4, 0, 0, 0])), "f32", [4], [
      0.25,
      Infinity,
      -Infinity,
      NaN,
    ]);
    // integer division truncates toward zero; INT_MIN / -1 overflows back to INT_MIN
    expect(binary("div", i32([4], [7, -7, 7, -2147483648]), i32([4], [2, 2, -2, -1])), "i32", [4], [
      3,
      -3,
      -3,
      -2147483648,
    ]);
    expect(binary("div", u32([1], [4294967295]), u32([1], [2])), "u32", [1], [2147483647]);
    expect(binary("pow", f32([3], [2, 9, 2]), f32([3], [3, 0.5, -1])), "f32", [3], [8, 3, 0.5]);
    expect(binary("max", f32([3], [1, 5, -2]), f32([3], [3, 2, -2])), "f32", [3], [3, 5, -2]);
    expect(binary("min", i32([3], [1, 5, -2]), i32([3], [3, 2, -3])), "i32", [3], [1, 2, -3]);
  });

  await s.step("comparisons and logic give bool", () => {
    const [a, b] = [f32([3], [1, 2, 3]), f32([3], [2, 2, 2])];
    expect(binary("lt", a, b), "bool", [3], [1, 0, 0]);
    expect(binary("le", a, b), "bool", [3], [1, 1, 0]);
    expect(binary("eq", a, b), "bool", [3], [0, 1, 0]);
    expect(binary("ne", i32([3], [1, 2, -3]), i32([3], [2, 2, 3])), "bool", [3], [1, 0, 1]);
    const [p, q] = [bool([4], [1, 1, 0, 0]), bool([4], [1, 0, 1, 0])];
    expect(binary("and", p, q), "bool", [4], [1, 0, 0, 0]);
    expect(binary("or", p, q), "bool", [4], [1, 1, 1, 0]);
    const cond = bool([3], [1, 0, 1]);
    expect(node("where", [cond, f32([3], [1, 2, 3]), f32([3], [10, 20, 30])], null), "f32", [3], [1, 20, 3]);
  });

  await s.step("reductions keep the reduced axes as size 1", () => {
    const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    expect(node("sum", [x], { axes: [1] }), "f32", [2, 1], [6, 15]);
    expect(node("sum", [x], { axes: [0] }), "f32", [1, 3], [5, 7, 9]);
    expect(node("sum", [x], { axes: [0, 1] }), "f32", [1, 1], [21]);
    expect(node("sum", [i32([3], [2147483647, 1, 5])], { axes: [0] }), "i32", [1], [-2147483643]);
    expect(node("reduce_max", [x], { axes: [1] }), "f32", [2, 1], [3, 6]);
    expect(node("reduce_max", [f32([3], [-5, -1, -3])], { axes: [0] }), "f32", [1], [-1]);
  });

  await s.step("matmul: plain and batched", () => {
    // [[1,2,3],[4,5,6]] x [[1],[0],[-1]]
    expect(node("matmul", [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([3, 1], [1, 0, -1])], null), "f32", [2, 1], [
      -2,
      -2,
    ]);
    // batch 0: [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]]; batch 1: [[0,1],[1,0]] x diag(2,3)
    const a = f32([2, 2, 2], [1, 2, 3, 4, 0, 1, 1, 0]);
    const b = f32([2, 2, 2], [5, 6, 7, 8, 2, 0, 0, 3]);
    expect(node("matmul", [a, b], null), "f32", [2, 2, 2], [19, 22, 43, 50, 0, 3, 2, 0]);
  });

  await s.step("conv2d: padding, stride and groups on hand-computed values", () => {
    // x: one 3x3 channel 1..9; w: 2x2 [[1, 0], [0, -1]]; padding 1 -> 4x4 of xp[i][j] - xp[i+1][j+1]
    const x = f32([1, 3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const w = f32([2, 2, 1, 1], [1, 0, 0, -1]);
    const conv = (a: Node, b: Node, stride: number, padding: number, groups: number) =>
      node("conv2d", [a, b], { stride, padding, groups });
    expect(conv(x, w, 1, 1, 1), "f32", [1, 4, 4, 1], [
      -1,
      -2,
      -3,
      0,
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
    ]);
    expect(conv(x, w, 2, 1, 1), "f32", [1, 2, 2, 1], [-1, -3, -7, -4]);
    // two groups over channels (a, b) of a 1x1 image, 1x1 kernel: out = [2a, 3a, 5b, 7b]
    const w2 = f32([1, 1, 1, 4], [2, 3, 5, 7]);
    expect(conv(f32([1, 1, 1, 2], [10, 100]), w2, 1, 0, 2), "f32", [1, 1, 1, 4], [20, 30, 500, 700]);
  });

  await s.step("movement", () => {
    const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    expect(node("reshape", [x], { shape: [3, 2] }), "f32", [3, 2], [1, 2, 3, 4, 5, 6]);
    // [[1,2,3],[4,5,6]] transposed
    expect(node("permute", [x], { perm: [1, 0] }), "f32", [3, 2], [1, 4, 2, 5, 3, 6]);
    // out[i, j, k] = x[j, k, i] for x = 0..7 in [2, 2, 2]
    const cube = f32([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(node("permute", [cube], { perm: [2, 0, 1] }), "f32", [2, 2, 2], [0, 2, 4, 6, 1, 3, 5, 7]);
    expect(node("expand", [f32([1, 3], [1, 2, 3])], { shape: [2, 3] }), "f32", [2, 3], [1, 2, 3, 1, 2, 3]);
    expect(node("expand", [f32([2, 1], [1, 2])], { shape: [2, 3] }), "f32", [2, 3], [1, 1, 1, 2, 2, 2]);
    // rows 1..2, columns 1..2 of 0..11 in [3, 4]
    const grid = f32([3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(node("slice", [grid], { starts: [1, 1], ends: [3, 3] }), "f32", [2, 2], [5, 6, 9, 10]);
    expect(node("slice", [grid], { starts: [0, 3], ends: [3, 4] }), "f32", [3, 1], [3, 7, 11]);
    // one row of 9s above, one column of 9s to the right
    const pad = { before: [1, 0], after: [0, 1], value: 9 };
    expect(node("pad", [f32([2, 2], [1, 2, 3, 4])], pad), "f32", [3, 3], [9, 9, 9, 1, 2, 9, 3, 4, 9]);
    const negInf = { before: [0], after: [2], value: -Infinity };
    expect(node("pad", [f32([1], [5])], negInf), "f32", [3], [5, -Infinity, -Infinity]);
    const [left, right] = [f32([2, 1], [1, 2]), f32([2, 2], [3, 4, 5, 6])];
    expect(node("concat", [left, right], { axis: 1 }), "f32", [2, 3], [1, 3, 4, 2, 5, 6]);
    const [top, bottom] = [f32([1, 2], [1, 2]), f32([2, 2], [3, 4, 5, 6])];
    expect(node("concat", [top, bottom, top], { axis: 0 }), "f32", [4, 2], [1, 2, 3, 4, 5, 6, 1, 2]);
  });

  await s.step("gather and scatter_add, out-of-range rows", () => {
    const table = f32([3, 2], [1, 2, 3, 4, 5, 6]);
    // rows 2, 0, then 3 and -1 are out of range and read as zeros
    expect(node("gather", [table, i32([4], [2, 0, 3, -1])], null), "f32", [4, 2], [5, 6, 1, 2, 0, 0, 0, 0]);
    expect(node("gather", [table, u32([2, 1], [1, 1])], null), "f32", [2, 1, 2], [3, 4, 3, 4]);
    expect(node("gather", [f32([3], [7, 8, 9]), i32([2], [2, 1])], null), "f32", [2], [9, 8]);
    // row 0 gets updates 0 and 2, row 2 gets update 1; rows 5 and -1 are dropped
    const updates = f32([5, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const index = i32([5], [0, 2, 0, 5, -1]);
    expect(node("scatter_add", [index, updates], { rows: 3 }), "f32", [3, 2], [6, 8, 0, 0, 3, 4]);
  });

  await s.step("attention and its backward ops, worked by hand", () => {
    // B = H = 1, T = S = 2, D = 1, scale 1, causal. q = [1, 1], k = [0, ln 3], v = [10, 20].
    // Row 0 sees key 0 only: o = 10, lse = 0. Row 1: weights 1 : 3, o = (10 + 3 * 20) / 4, lse = ln 4.
    const arg = { mask: { kind: "causal" } as const, scale: 1, fields: [] };
    const [q, k, v] = [
      f32([1, 1, 2, 1], [1, 1]),
      f32([1, 1, 2, 1], [0, Math.log(3)]),
      f32([1, 1, 2, 1], [10, 20]),
    ];
    // f64 rounding of exp/log: 1e-12 is far below anything a wrong formula would give
    expect(node("attention", [q, k, v], arg), "f32", [1, 1, 2, 2], [10, 0, 17.5, Math.log(4)], 1e-12);
    // dO = [1, 1], delta = dO . O = [10, 17.5]. Row 1: dS = p (dO . v - delta) = [1/4 (10 - 17.5), 3/4 (20 - 17.5)].
    const grads = [
      q,
      k,
      v,
      f32([1, 1, 2], [0, Math.log(4)]),
      f32([1, 1, 2, 1], [1, 1]),
      f32([1, 1, 2], [10, 17.5]),
    ];
    expect(node("attention_grad_q", grads, arg), "f32", [1, 1, 2, 1], [0, 1.875 * Math.log(3)], 1e-12);
    // dK = sum_i dS q_i, dV = sum_i p dO_i, side by side per key: [dk0, dv0, dk1, dv1]
    expect(node("attention_grad_kv", grads, arg), "f32", [1, 1, 2, 2], [-1.875, 1.25, 1.875, 0.75], 1e-12);
  });

  await s.step("random: Philox words, determinism, streams, ranges, moments", () => {
    // seed [0, 0], stream 0, element 0 is Philox at counter 0 and key 0: the published test vector
    const zero = u32([2], [0, 0]);
    const w = [0x6627e8d5, 0xe169c58d];
    const u0 = (w[0]! >>> 8) / 2 ** 24;
    const uniform = node("rand_uniform", [zero], { shape: [2, 2], stream: 0 });
    covered.add("rand_uniform");
    assert.equal(run(uniform)[0], u0);
    assert.equal(u0, 0x6627e8 / 16777216);
    // Box-Muller of the same two words, u1 in (0, 1]
    const u1 = ((w[0]! >>> 8) + 1) / 2 ** 24;
    const u2 = (w[1]! >>> 8) / 2 ** 24;
    const normal0 = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    covered.add("rand_normal");
    assert.ok(Math.abs(run(node("rand_normal", [zero], { shape: [3], stream: 0 }))[0]! - normal0) < 1e-15);

    const seed = u32([2], [1234, 7]);
    const draw = (
      op: "rand_uniform" | "rand_normal",
      shape: number[],
      stream: number,
      s = seed,
    ) => [...run(node(op, [s], { shape, stream }))];
    assert.deepEqual(draw("rand_uniform", [64], 3), draw("rand_uniform", [64], 3));
    assert.notDeepEqual(draw("rand_uniform", [64], 3), draw("rand_uniform", [64], 4));
    assert.notDeepEqual(draw("rand_normal", [64], 0), draw("rand_normal", [64], 1));
    assert.notDeepEqual(draw("rand_uniform", [64], 3), draw("rand_uniform", [64], 3, u32([2], [1234, 8])));
    assert.notDeepEqual(draw("rand_uniform", [64], 3), draw("rand_uniform", [64], 3, u32([2], [1235, 7])));
    // element i depends on i, not on the shape it sits in
    assert.deepEqual(draw("rand_normal", [2, 5], 2).slice(0, 4), draw("rand_normal", [4], 2));

    const n = 10_000;
    const moments = (xs: number[]) => {
      const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
      return [mean, xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length] as const;
    };
    const us = draw("rand_uniform", [n], 5);
    assert.ok(us.every((u) => u >= 0 && u < 1), "uniform draws lie in [0, 1)");
    const [um, uv] = moments(us);
    assert.ok(Math.abs(um - 0.5) < 0.015, `uniform mean ${um}`); // sd of the mean: 0.0029
    assert.ok(Math.abs(uv - 1 / 12) < 0.005, `uniform variance ${uv}`);
    const [nm, nv] = moments(draw("rand_normal", [n], 6));
    assert.ok(Math.abs(nm) < 0.05, `normal mean ${nm}`); // sd of the mean: 0.01
    assert.ok(Math.abs(nv - 1) < 0.06, `normal variance ${nv}`); // sd of the variance: 0.014
  });

  assert.deepEqual([...covered].sort(), [...ALL_OPS].sort(), "every op in the registry has a case");
});

Deno.test("philox: Philox4x32-10 known-answer vectors (Salmon et al. 2011)", () => {
  const hex = (ws: readonly number[]) => ws.map((x) => x.toString(16).padStart(8, "0")).join(" ");
  assert.equal(hex(philox(0, 0, 0, 0, 0, 0)), "6627e8d5 e169c58d bc57ac4c 9b00dbd8");
  const f = 0xffffffff;
  assert.equal(hex(philox(f, f, f, f, f, f)), "408f276d 41c83b0e a20bc7c6 6d5451fd");
  // counter and key from the digits of pi
  const pi = philox(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0);
  assert.equal(hex(pi), "d16cfe09 94fdcceb 5001e420 24126ea1");
});
