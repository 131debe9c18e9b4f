import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { type DType, node, SpecError } from "../compiler/ir/mod.ts";
import {
  attention,
  causalMask,
  crossEntropy,
  embedding,
  gelu,
  geluTanh,
  layernorm,
  linear,
  logSoftmax,
  MASKED_SCORE,
  mse,
  patchGrid,
  rmsnorm,
  rope1d,
  rope2d,
  silu,
  sinusoidalEmbedding,
  softmax,
  swiglu,
  Tensor,
} from "../spec/mod.ts";
import { materialize, type Materialized, type ParamEntry, type ParamTree } from "../spec/params.ts";

// ---------------------------------------------------------------------------------------------
// harness: inputs as IR input nodes, params filled with seeded random values, the interpreter as judge

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = random(1234);
const randn = (n: number, scale = 1) => Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const randInt = (n: number, hi: number) => Array.from({ length: n }, () => Math.floor(rand() * hi));

function input<D extends DType, const S extends readonly number[]>(name: string, shape: S, dtype: D) {
  return new Tensor<D, S["length"]>(node("input", [], { name, shape, dtype }));
}

type Feed = Record<string, ArrayLike<number>>;
function run(t: Tensor, inputs: Feed = {}, params: Feed = {}): number[] {
  return Array.from(interpret([t.node], { inputs, params })[0]!.data);
}

/** Materializes a layer with random parameters (scale 0.5, so outputs are far from trivial). */
function build<T extends ParamTree>(tree: T) {
  const entries: ParamEntry[] = [];
  const layer: unknown = materialize(tree, entries);
  const params: Record<string, number[]> = {};
  for (const e of entries) params[e.path] = randn(e.decl.shape.reduce((p, d) => p * d, 1), 0.5);
  return { layer: layer as Materialized<T>, params };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-9) {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < actual.length; i++) {
    const [a, e] = [actual[i]!, expected[i]!];
    assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `element ${i}: ${a} vs expected ${e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// straightforward references: loops over flat row-major arrays

/** y[i, j] = sum_p a[i, p] b[p, j]. */
function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  }
  return out;
}
function rowsRef(x: ArrayLike<number>, width: number, f: (row: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length; i += width) out.push(...f(Array.from(x).slice(i, i + width)));
  return out;
}
function softmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((p, v) => p + v, 0);
  return e.map((v) => v / s);
}
/** erf by Simpson's rule on 2/sqrt(pi) e^(-t^2): independent of the interpreter's series. */
function erfRef(x: number): number {
  const n = 2000;
  const h = x / n;
  let s = 1 + Math.exp(-x * x);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return (2 / Math.sqrt(Math.PI)) * (h / 3) * s;
}
/** Rotate-half RoPE of one head vector at `pos`. */
function ropeVec(v: number[], pos: number, base = 10000): number[] {
  const d = v.length;
  const out = v.slice();
  for (let i = 0; i < d / 2; i++) {
    const theta = pos * Math.pow(base, (-2 * i) / d);
    const [a, b] = [v[i]!, v[i + d / 2]!];
    out[i] = a * Math.cos(theta) - b * Math.sin(theta);
    out[i + d / 2] = b * Math.cos(theta) + a * Math.sin(theta);
  }
  return out;
}
/** Applies `f(vector, b, t)` to every [b, h, t, :] of a [B, H, T, D] array. */
function perHeadVector(
  x: number[],
  [B, H, T, D]: number[],
  f: (v: number[], b: number, t: number) => number[],
) {
  const out: number[] = [];
  for (let b = 0; b < B!; b++) {
    for (let h = 0; h < H!; h++) {
      for (let t = 0; t < T!; t++) {
        const at = ((b * H! + h) * T! + t) * D!;
        out.push(...f(x.slice(at, at + D!), b, t));
      }
    }
  }
  return out;
}
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));

// ---------------------------------------------------------------------------------------------

Deno.test("softmax and logSoftmax", async (t) => {
  const xs = randn(15, 3);
  const x = input("x", [3, 5], "f32");
  await t.step("match the reference along the last axis and rows sum to 1", () => {
    const got = run(softmax(x), { x: xs });
    assertClose(got, rowsRef(xs, 5, softmaxRow));
    for (let r = 0; r < 3; r++) assertClose([got.slice(r * 5, r * 5 + 5).reduce((p, v) => p + v, 0)], [1]);
  });
  await t.step("along axis 0", () => {
    const got = run(softmax(x, 0), { x: xs });
    for (let c = 0; c < 5; c++) {
      const col = softmaxRow([xs[c]!, xs[5 + c]!, xs[10 + c]!]);
      assertClose([got[c]!, got[5 + c]!, got[10 + c]!], col);
    }
  });
  await t.step("logSoftmax = log(softmax) and stays finite for huge logits", () => {
    assertClose(run(logSoftmax(x), { x: xs }), rowsRef(xs, 5, softmaxRow).map(Math.log));
    const big = [1000, 0, -1000, 999, 1000];
    const got = run(logSoftmax(input("big", [5], "f32")), { big });
    assert.ok(got.every(Number.isFinite), `${got}`);
    assertClose([got[0]!, got[3]!], [-Math.log(2 + Math.exp(-1)), -1 - Math.log(2 + Math.exp(-1))]);
    assertClose(run(softmax(input("big", [5], "f32")), { big }), softmaxRow(big));
  });
});

Deno.test("activations match their formulas", () => {
  const xs = [-4, -2.5, -1, -0.3, 0, 0.2, 1, 1.7, 3, 6];
  const x = input("x", [10], "f32");
  assertClose(run(gelu(x), { x: xs }), xs.map((v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2))), 1e-10);
  const tanhRef = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  assertClose(run(geluTanh(x), { x: xs }), xs.map(tanhRef));
  assertClose(run(silu(x), { x: xs }), xs.map((v) => v / (1 + Math.exp(-v))));
  // the two GELUs agree to ~1e-3, a sanity check of the constants
  assertClose(run(gelu(x), { x: xs }), xs.map(tanhRef), 1e-2);
});

Deno.test("linear and embedding", async (t) => {
  await t.step("linear: x W + b on a rank-3 input", () => {
    const { layer, params } = build(linear(4, 3));
    const xs = randn(2 * 5 * 4);
    const got = run(layer(input("x", [2, 5, 4], "f32")), { x: xs }, params);
    const want = matmulRef(xs, params["w"]!, 10, 4, 3).map((v, i) => v + params["b"]![i % 3]!);
    assertClose(got, want);
  });
  await t.step("embedding: rows of the table, zeros for out-of-range ids", () => {
    const { layer, params } = build(embedding(6, 3));
    const ids = [0, 5, 2, 6, -1, 2];
    const got = run(layer(input("ids", [2, 3], "i32")), { ids }, params);
    const table = params["table"]!;
    const want = ids.flatMap((r) => (r >= 0 && r < 6 ? table.slice(r * 3, r * 3 + 3) : [0, 0, 0]));
    assertClose(got, want);
  });
});

Deno.test("rmsnorm and layernorm", async (t) => {
  const xs = randn(4 * 6, 3);
  const x = input("x", [4, 6], "f32");
  await t.step("rmsnorm matches the reference; with unit gain each row has RMS 1", () => {
    const { layer, params } = build(rmsnorm(6));
    const ref = (row: number[]) => {
      const rms = Math.sqrt(row.reduce((p, v) => p + v * v, 0) / row.length + 1e-6);
      return row.map((v, i) => (v / rms) * params["g"]![i]!);
    };
    assertClose(run(layer(x), { x: xs }, params), rowsRef(xs, 6, ref));
    const unit = run(layer(x), { x: xs }, { g: Array(6).fill(1) });
    for (let r = 0; r < 4; r++) {
      const row = unit.slice(r * 6, r * 6 + 6);
      assertClose([Math.sqrt(dot(row, row) / 6)], [1], 1e-5);
    }
  });
  await t.step("layernorm matches the reference; unit gain, zero bias give mean 0, variance 1", () => {
    const { layer, params } = build(layernorm(6));
    const ref = (row: number[]) => {
      const mean = row.reduce((p, v) => p + v, 0) / row.length;
      const variance = row.reduce((p, v) => p + (v - mean) ** 2, 0) / row.length;
      return row.map((v, i) =>
        ((v - mean) / Math.sqrt(variance + 1e-5)) * params["g"]![i]! + params["b"]![i]!
      );
    };
    assertClose(run(layer(x), { x: xs }, params), rowsRef(xs, 6, ref));
    const unit = run(layer(x), { x: xs }, { g: Array(6).fill(1), b: Array(6).fill(0) });
    for (let r = 0; r < 4; r++) {
      const row = unit.slice(r * 6, r * 6 + 6);
      assertClose([row.reduce((p, v) => p + v, 0) / 6, dot(row, row) / 6], [0, 1], 1e-5);
    }
  });
  await t.step("a wrong last dim is reported with the shape", () => {
    const { layer } = build(rmsnorm(5));
    assert.throws(
      () => layer(x),
      (e: unknown) => e instanceof SpecError && /\[\.\.\., 5\].*\[4, 6\]/.test(e.message),
    );
  });
});

Deno.test("swiglu matches w2(silu(x w1) * (x w3))", () => {
  const { layer, params } = build(swiglu(4, 6));
  const xs = randn(3 * 4);
  const h1 = matmulRef(xs, params["w1.w"]!, 3, 4, 6);
  const h3 = matmulRef(xs, params["w3.w"]!, 3, 4, 6);
  const gated = h1.map((v, i) => (v / (1 + Math.exp(-v))) * h3[i]!);
  const want = matmulRef(gated, params["w2.w"]!, 3, 6, 4);
  assertClose(run(layer(input("x", [3, 4], "f32")), { x: xs }, params), want);
});

Deno.test("rope1d", async (t) => {
  const shape = [2, 2, 3, 4];
  const xs = randn(2 * 2 * 3 * 4);
  const x = input("x", [2, 2, 3, 4], "f32");
  await t.step("shared positions [T] match the rotate-half reference", () => {
    const pos = [0, 3, 7];
    const got = run(rope1d(x, input("pos", [3], "i32")), { x: xs, pos });
    assertClose(got, perHeadVector(xs, shape, (v, _b, t) => ropeVec(v, pos[t]!)));
  });
  await t.step("per-batch positions [B, T] and another base", () => {
    const pos = [0, 1, 2, 5, 9, 4];
    const got = run(rope1d(x, input("pos2", [2, 3], "i32"), 100), { x: xs, pos2: pos });
    assertClose(got, perHeadVector(xs, shape, (v, b, t) => ropeVec(v, pos[b * 3 + t]!, 100)));
  });
  await t.step("norms are preserved and q(m)·k(n) depends only on m - n", () => {
    const [T, D] = [6, 8];
    const [qv, kv] = [randn(D), randn(D)];
    const pos = Array.from({ length: T }, (_, i) => i);
    const rotate = (v: number[], name: string) => {
      const out = run(rope1d(input(name, [1, 1, T, D], "f32"), input("p", [T], "i32")), {
        [name]: Array.from({ length: T }, () => v).flat(),
        p: pos,
      });
      return pos.map((i) => out.slice(i * D, (i + 1) * D));
    };
    const [q, k] = [rotate(qv, "q"), rotate(kv, "k")];
    for (const row of q) assertClose([norm(row)], [norm(qv)]);
    for (const [m, n] of [[0, 2], [1, 3], [3, 5]] as const) {
      assertClose([dot(q[m]!, k[n]!)], [dot(q[0]!, k[2]!)]);
    }
    for (const [m, n] of [[4, 0], [5, 1]] as const) assertClose([dot(q[m]!, k[n]!)], [dot(q[4]!, k[0]!)]);
    assert.ok(Math.abs(dot(q[0]!, k[2]!) - dot(q[0]!, k[3]!)) > 1e-6, "different offsets should differ");
  });
  await t.step("an odd head dim is rejected", () => {
    assert.throws(
      () => rope1d(input("odd", [1, 1, 3, 5], "f32"), input("pos", [3], "i32")),
      (e: unknown) => e instanceof SpecError && /even, got 5/.test(e.message),
    );
  });
});

Deno.test("rope2d", async (t) => {
  const [h, w, D] = [2, 3, 8];
  const T = h * w;
  const grid = patchGrid(h, w);
  await t.step("patchGrid lists row and column of each patch", () => {
    assert.deepEqual(run(grid.rows), [0, 0, 0, 1, 1, 1]);
    assert.deepEqual(run(grid.cols), [0, 1, 2, 0, 1, 2]);
  });
  await t.step("the first half rotates with the row, the second with the column", () => {
    const xs = randn(1 * 2 * T * D);
    const got = run(rope2d(input("x", [1, 2, T, D], "f32"), grid.rows, grid.cols), { x: xs });
    const want = perHeadVector(xs, [1, 2, T, D], (v, _b, t) => [
      ...ropeVec(v.slice(0, D / 2), Math.floor(t / w)),
      ...ropeVec(v.slice(D / 2), t % w),
    ]);
    assertClose(got, want);
  });
  await t.step("q·k depends only on the (row, col) offset", () => {
    const [qv, kv] = [randn(D), randn(D)];
    const rotate = (v: number[], name: string) => {
      const out = run(rope2d(input(name, [1, 1, T, D], "f32"), grid.rows, grid.cols), {
        [name]: Array.from({ length: T }, () => v).flat(),
      });
      return (r: number, c: number) => out.slice((r * w + c) * D, (r * w + c + 1) * D);
    };
    const [q, k] = [rotate(qv, "q"), rotate(kv, "k")];
    assertClose([dot(q(0, 1), k(1, 2))], [dot(q(0, 0), k(1, 1))]);
    assertClose([dot(q(1, 0), k(0, 1))], [dot(q(1, 1), k(0, 2))]);
    assertClose([dot(q(1, 1), k(0, 0))], [dot(q(1, 2), k(0, 1))]);
    assert.ok(
      Math.abs(dot(q(0, 0), k(1, 1)) - dot(q(0, 0), k(1, 2))) > 1e-6,
      "different offsets should differ",
    );
    assertClose([norm(q(1, 2))], [norm(qv)]);
  });
});

/** Multi-head attention by loops: softmax(q k / sqrt(dh) masked) v per head, then the output projection. */
function attentionRef(
  xs: number[],
  params: Record<string, number[]>,
  [B, T, D, H]: number[],
  allowed: (b: number, i: number, j: number) => boolean,
  rotate: (v: number[], pos: number) => number[],
): number[] {
  const dh = D! / H!;
  const [q, k, v] = ["wq.w", "wk.w", "wv.w"].map((name) => matmulRef(xs, params[name]!, B! * T!, D!, D!));
  const heads = new Array<number>(B! * T! * D!).fill(0);
  const vec = (a: number[], b: number, t: number, h: number) =>
    a.slice((b * T! + t) * D! + h * dh, (b * T! + t) * D! + (h + 1) * dh);
  for (let b = 0; b < B!; b++) {
    for (let h = 0; h < H!; h++) {
      for (let i = 0; i < T!; i++) {
        const qi = rotate(vec(q!, b, i, h), i);
        const scores = [...Array(T!).keys()].map((j) =>
          allowed(b, i, j) ? dot(qi, rotate(vec(k!, b, j, h), j)) / Math.sqrt(dh) : MASKED_SCORE
        );
        const probs = softmaxRow(scores);
        for (let j = 0; j < T!; j++) {
          const vj = vec(v!, b, j, h);
          for (let d = 0; d < dh; d++) heads[(b * T! + i) * D! + h * dh + d]! += probs[j]! * vj[d]!;
        }
      }
    }
  }
  return matmulRef(heads, params["wo.w"]!, B! * T!, D!, D!);
}

Deno.test("attention", async (t) => {
  const [B, T, D, H] = [2, 4, 8, 2];
  const { layer, params } = build(attention(D, H));
  const xs = randn(B * T * D);
  const x = input("x", [B, T, D], "f32");
  const noRope = (v: number[]) => v;
  await t.step("causalMask allows key <= query", () => {
    const got = run(causalMask(T));
    assert.deepEqual(got, [...Array(T * T).keys()].map((f) => +(f % T <= Math.floor(f / T))));
  });
  await t.step("no mask: every query sees every key", () => {
    assertClose(run(layer(x), { x: xs }, params), attentionRef(xs, params, [B, T, D, H], () => true, noRope));
  });
  await t.step("a causal [T, T] mask with RoPE", () => {
    const pos = input("pos", [T], "i32");
    const got = run(
      layer(x, { mask: causalMask(T), rope: (qk) => rope1d(qk, pos) }),
      { x: xs, pos: [0, 1, 2, 3] },
      params,
    );
    assertClose(got, attentionRef(xs, params, [B, T, D, H], (_b, i, j) => j <= i, ropeVec));
  });
  await t.step("a per-batch [B, T, T] mask", () => {
    const allowed = randInt(B * T * T, 2);
    const got = run(layer(x, { mask: input("m", [B, T, T], "bool") }), { x: xs, m: allowed }, params);
    const want = attentionRef(
      xs,
      params,
      [B, T, D, H],
      (b, i, j) => allowed[(b * T + i) * T + j] === 1,
      noRope,
    );
    assertClose(got, want);
  });
  await t.step("a fully masked query row is finite: the mean of the values, projected", () => {
    // causal, except that query 0 may attend to nothing
    const allowed = [...Array(T * T).keys()].map((f) => +(f >= T && f % T <= Math.floor(f / T)));
    const got = run(layer(x, { mask: input("m1", [T, T], "bool") }), { x: xs, m1: allowed }, params);
    assert.ok(got.every(Number.isFinite));
    const v = matmulRef(xs, params["wv.w"]!, B * T, D, D);
    const meanV = [...Array(D).keys()].map((d) =>
      [...Array(T).keys()].reduce((s, j) => s + v[j * D + d]!, 0) / T
    );
    assertClose(got.slice(0, D), matmulRef(meanV, params["wo.w"]!, 1, D, D));
  });
  await t.step("with a causal mask, changing a future token leaves earlier outputs alone", () => {
    const y = layer(x, { mask: causalMask(T) });
    const before = run(y, { x: xs }, params);
    const changed = xs.slice();
    for (let d = 0; d < D; d++) changed[(T - 1) * D + d]! += 5; // batch 0, last position
    const after = run(y, { x: changed }, params);
    assertClose(after.slice(0, (T - 1) * D), before.slice(0, (T - 1) * D));
    assert.ok(
      Math.abs(after[(T - 1) * D]! - before[(T - 1) * D]!) > 1e-6,
      "the changed position itself moves",
    );
    assertClose(after.slice(T * D), before.slice(T * D)); // batch 1 untouched
  });
  await t.step("bad heads or mask shapes are reported with their values", () => {
    assert.throws(
      () => attention(10, 3),
      (e: unknown) => e instanceof SpecError && /dim 10.*heads = 3/.test(e.message),
    );
    assert.throws(
      () => layer(x, { mask: input("bad", [T, T + 1], "bool") }),
      (e: unknown) => e instanceof SpecError && /\[4, 5\]/.test(e.message),
    );
  });
});

Deno.test("crossEntropy", async (t) => {
  const [N, C] = [6, 4];
  const xs = randn(N * C, 3);
  const labels = randInt(N, C);
  const nll = (i: number, label: number) => {
    const row = xs.slice(i * C, (i + 1) * C);
    const m = Math.max(...row);
    return -(row[label]! - m - Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)));
  };
  const meanOver = (keep: boolean[]) => {
    const picked = labels.map((l, i) => (keep[i] ? nll(i, l) : 0));
    return picked.reduce((s, v) => s + v, 0) / keep.filter(Boolean).length;
  };
  const logits = input("logits", [N, C], "f32");
  const y = input("y", [N], "i32");
  await t.step("[N, C]: the mean of -log p[label]", () => {
    const loss = crossEntropy(logits, y);
    assert.deepEqual([loss.dtype, loss.rank], ["f32", 0]);
    assertClose(run(loss, { logits: xs, y: labels }), [meanOver(labels.map(() => true))]);
  });
  await t.step("[B, T, C] with an ignore mask, u32 labels", () => {
    const ignore = [0, 1, 0, 0, 1, 0];
    const loss = crossEntropy(
      input("l3", [2, 3, C], "f32"),
      input("y3", [2, 3], "u32"),
      { ignore: input("ig", [2, 3], "bool") },
    );
    assertClose(run(loss, { l3: xs, y3: labels, ig: ignore }), [meanOver(ignore.map((v) => v === 0))]);
  });
  await t.step("ignoreIndex, alone and with a mask", () => {
    const marked = labels.map((l, i) => (i % 3 === 0 ? -100 : l));
    const keep = marked.map((l) => l !== -100);
    assertClose(run(crossEntropy(logits, y, { ignoreIndex: -100 }), { logits: xs, y: marked }), [
      meanOver(keep),
    ]);
    const ignore = [0, 0, 1, 0, 0, 0];
    const both = crossEntropy(logits, y, { ignoreIndex: -100, ignore: input("ig1", [N], "bool") });
    const keepBoth = keep.map((k, i) => k && ignore[i] === 0);
    assertClose(run(both, { logits: xs, y: marked, ig1: ignore }), [meanOver(keepBoth)]);
  });
  await t.step("everything ignored gives 0, uniform logits give ln C", () => {
    const all = crossEntropy(logits, y, { ignore: input("ig1", [N], "bool") });
    assert.deepEqual(run(all, { logits: xs, y: labels, ig1: Array(N).fill(1) }), [0]);
    assertClose(run(crossEntropy(logits, y), { logits: Array(N * C).fill(0.7), y: labels }), [Math.log(C)]);
  });
  await t.step("mismatched shapes are reported", () => {
    assert.throws(
      () => crossEntropy(logits, input("y5", [5], "i32")),
      (e: unknown) => e instanceof SpecError && /\[6, 4\] and labels|\[6, 4\].*\[5\]/.test(e.message),
    );
  });
});

Deno.test("mse and sinusoidalEmbedding", async (t) => {
  await t.step("mse is the mean squared difference", () => {
    const [as, bs] = [randn(12), randn(12)];
    const got = run(mse(input("a", [3, 4], "f32"), input("b", [3, 4], "f32")), { a: as, b: bs });
    assertClose(got, [as.reduce((s, v, i) => s + (v - bs[i]!) ** 2, 0) / 12]);
  });
  const ts = [0, 1.5, 250];
  const ref = (dim: number) =>
    ts.flatMap((t) => {
      const half = Math.floor(dim / 2);
      const f = [...Array(half).keys()].map((i) => Math.exp((-Math.log(10000) * i) / half));
      return [
        ...f.map((fi) => Math.cos(t * fi)),
        ...f.map((fi) => Math.sin(t * fi)),
        ...(dim % 2 ? [0] : []),
      ];
    });
  await t.step("[cos, sin] halves for an even dim, a trailing zero for an odd one", () => {
    const t3 = input("t", [3], "f32");
    const even = sinusoidalEmbedding(t3, 8);
    assert.deepEqual(even.shape, [3, 8]);
    assertClose(run(even, { t: ts }), ref(8));
    assertClose(run(sinusoidalEmbedding(t3, 7), { t: ts }), ref(7));
    assertClose(run(even, { t: ts }).slice(0, 8), [1, 1, 1, 1, 0, 0, 0, 0]);
  });
});
