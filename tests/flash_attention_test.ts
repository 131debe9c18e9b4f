import assert from "node:assert/strict";
import {
  type AllowedFn,
  attentionBackwardRef,
  attentionForwardRef,
  EMPTY_ROW_LSE,
} from "../compiler/attention_reference.ts";
import {
  type AttentionBackwardIO,
  type AttentionIO,
  type AttentionShape,
  type AttentionVariant,
  attentionVariantName,
  attentionVariants,
  defaultAttentionVariant,
  flashAttentionBackwardKV,
  flashAttentionBackwardQ,
  flashAttentionForward,
} from "../kernels/flash_attention.ts";
import type { KernelBinding } from "../kernels/kernel.ts";
import { runKernel } from "./gpu_harness.ts";

// ---- Layouts: per position a document (-1 = padding) and an image span (-1 = text) ----

interface Layout {
  readonly doc: readonly number[];
  readonly span: readonly number[];
}

/** Segments [doc, length, image?] laid end to end; images get distinct span ids. */
function layoutOf(t: number, segments: readonly (readonly [number, number, boolean?])[]): Layout {
  const doc: number[] = [];
  const span: number[] = [];
  segments.forEach(([d, length, image], id) => {
    for (let n = 0; n < length && doc.length < t; n++) {
      doc.push(d);
      span.push(image ? id : -1);
    }
  });
  while (doc.length < t) {
    doc.push(segments.at(-1)?.[0] ?? 0);
    span.push(-1);
  }
  return { doc, span };
}

/** Transfusion's rule: same document, and causal or inside the same image. */
function allowedBy(layouts: readonly Layout[]): AllowedFn {
  return (b, i, j) => {
    const { doc, span } = layouts[b]!;
    return doc[i]! >= 0 && doc[i] === doc[j] && (j <= i || (span[i]! >= 0 && span[i] === span[j]));
  };
}

interface Scenario {
  readonly name: string;
  /** One layout per batch row. */
  readonly layouts: (t: number) => Layout[];
}

const q4 = (t: number) => Math.max(1, Math.floor(t / 4));
const SCENARIOS: readonly Scenario[] = [
  { name: "text-only causal", layouts: (t) => [layoutOf(t, [[0, t]])] },
  {
    name: "one image inside a causal sequence",
    layouts: (t) => [layoutOf(t, [[0, q4(t)], [0, Math.ceil(t / 3), true], [0, t]])],
  },
  {
    name: "several images",
    layouts: (t) => [layoutOf(t, [[0, 3], [0, q4(t), true], [0, 2], [0, 5, true], [0, 1, true], [0, t]])],
  },
  { name: "image first, then text", layouts: (t) => [layoutOf(t, [[0, Math.ceil(t / 2), true], [0, t]])] },
  {
    name: "two packed documents (batch 2)",
    layouts: (t) => [
      layoutOf(t, [[0, 2], [0, q4(t), true], [1, 1], [1, q4(t), true], [1, t]]),
      layoutOf(t, [[5, 3], [6, t]]),
    ],
  },
  {
    name: "padding",
    layouts: (t) => [layoutOf(t, [[0, 1], [0, Math.ceil(t / 3), true], [0, q4(t)], [-1, t]])],
  },
];

// ---- IO: plain buffers; when checked, every access flags an out-of-range index in `oob` ----

type Classify = "exact" | "none";

/**
 * res is o / dQ / dK; res2 is lse / dV. Checked IO costs a branch per access, which makes lavapipe's
 * compile of the unrolled CPU kernels very slow, so only the range tests use it.
 */
function testIO(
  shape: AttentionShape,
  classify: Classify,
  checked = false,
): AttentionIO & AttentionBackwardIO {
  const { batch, heads, t, s, d } = shape;
  const names = ["q", "k", "v", "dout", "lse", "delta", "positions", "res", "res2", "oob"];
  const bindings: KernelBinding[] = names.map((buffer, binding) => ({
    binding,
    buffer,
    access: binding < 7 ? "read" : "read_write",
  }));
  const decl = (b: KernelBinding) =>
    `@group(0) @binding(${b.binding}) var<storage, ${b.access}> ${b.buffer}: array<${
      b.buffer === "positions" ? "i32" : "f32"
    }>;`;
  const check = (cond: string) => (checked ? `if (!(${cond})) { oob[0] = 1.0; }` : "");
  const loader = (buffer: string, rows: number) =>
    `fn load_${buffer}(b: u32, h: u32, i: u32, x: u32) -> f32 {
  ${check(`b < ${batch}u && h < ${heads}u && i < ${rows}u && x < ${d}u`)}
  return ${buffer}[((b * ${heads}u + h) * ${rows}u + i) * ${d}u + x];
}`;
  const storer = (buffer: string, rows: number, width: number) =>
    `fn store_${buffer}(b: u32, h: u32, i: u32, x: u32, value: f32) {
  ${check(`b < ${batch}u && h < ${heads}u && i < ${rows}u && x < ${width}u`)}
  ${buffer}[((b * ${heads}u + h) * ${rows}u + i) * ${width}u + x] = value;
}`;
  const declarations = `${bindings.map(decl).join("\n")}
${loader("q", t)}
${loader("k", s)}
${loader("v", s)}
${loader("dout", t)}
${storer("res", Math.max(t, s), d)}
${storer("res2", Math.max(t, s), d)}
fn load_stat(which: u32, b: u32, h: u32, i: u32) -> f32 {
  ${check(`b < ${batch}u && h < ${heads}u && i < ${t}u`)}
  let at = (b * ${heads}u + h) * ${t}u + i;
  return select(lse[at], delta[at], which == 1u);
}
fn pos(b: u32, i: u32, field: u32) -> i32 {
  ${check(`b < ${batch}u && i < ${t}u`)}
  return positions[(b * ${t}u + i) * 2u + field];
}
fn attn_allowed(b: u32, i: u32, j: u32) -> bool {
  let di = pos(b, i, 0u);
  let si = pos(b, i, 1u);
  return di >= 0 && di == pos(b, j, 0u) && (j <= i || (si >= 0 && si == pos(b, j, 1u)));
}
fn attn_tile_class(b: u32, i0: u32, i1: u32, j0: u32, j1: u32) -> u32 {
  ${check(`i0 <= i1 && j0 <= j1 && i1 < ${t}u && j1 < ${s}u`)}
  var some = false;
  var every = true;
  for (var i = i0; i <= i1; i++) {
    for (var j = j0; j <= j1; j++) {
      let a = attn_allowed(b, i, j);
      some = some || a;
      every = every && a;
    }
  }
  return select(select(2u, 1u, every), 0u, !some);
}`;
  return {
    declarations,
    bindings,
    loadQ: (b, h, i, x) => `load_q(${b}, ${h}, ${i}, ${x})`,
    loadK: (b, h, j, x) => `load_k(${b}, ${h}, ${j}, ${x})`,
    loadV: (b, h, j, x) => `load_v(${b}, ${h}, ${j}, ${x})`,
    loadDO: (b, h, i, x) => `load_dout(${b}, ${h}, ${i}, ${x})`,
    loadLse: (b, h, i) => `load_stat(0u, ${b}, ${h}, ${i})`,
    loadDelta: (b, h, i) => `load_stat(1u, ${b}, ${h}, ${i})`,
    allowed: (b, i, j) => `attn_allowed(${b}, ${i}, ${j})`,
    ...(classify === "exact"
      ? { tileClass: (b, i0, i1, j0, j1) => `attn_tile_class(${b}, ${i0}, ${i1}, ${j0}, ${j1})` }
      : {}),
    storeO: (b, h, i, x, value) => `store_res(${b}, ${h}, ${i}, ${x}, ${value});`,
    storeLse: (b, h, i, value) => `store_res2(${b}, ${h}, ${i}, 0u, ${value});`,
    storeDQ: (b, h, i, x, value) => `store_res(${b}, ${h}, ${i}, ${x}, ${value});`,
    storeDK: (b, h, j, x, value) => `store_res(${b}, ${h}, ${j}, ${x}, ${value});`,
    storeDV: (b, h, j, x, value) => `store_res2(${b}, ${h}, ${j}, ${x}, ${value});`,
  };
}

// ---- Data and running ----

/** Deterministic uniform values in [-amplitude, amplitude), as f32. */
function random(count: number, seed: number, amplitude = 1): Float32Array<ArrayBuffer> {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    state ^= state >>> 13;
    return amplitude * ((state / 2 ** 31) - 1);
  });
}

interface Problem {
  readonly shape: AttentionShape;
  readonly layouts: readonly Layout[];
  readonly q: Float32Array<ArrayBuffer>;
  readonly k: Float32Array<ArrayBuffer>;
  readonly v: Float32Array<ArrayBuffer>;
  readonly dout: Float32Array<ArrayBuffer>;
}

function problem(shape: AttentionShape, layouts: readonly Layout[], seed: number): Problem {
  const { batch, heads, t, s, d } = shape;
  return {
    shape,
    layouts,
    q: random(batch * heads * t * d, seed, 2),
    k: random(batch * heads * s * d, seed + 1),
    v: random(batch * heads * s * d, seed + 2),
    dout: random(batch * heads * t * d, seed + 3),
  };
}

interface Outputs {
  readonly o: Float32Array;
  readonly lse: Float32Array;
  readonly dq: Float32Array;
  readonly dk: Float32Array;
  readonly dv: Float32Array;
}

/** Forward on the device, then both backward kernels fed with the device's own o and lse. */
async function runAll(
  p: Problem,
  variant: AttentionVariant,
  classify: Classify,
  checked = false,
): Promise<Outputs> {
  const { shape } = p;
  const { batch, heads, t, s, d } = shape;
  const io = testIO(shape, classify, checked);
  const positions = Int32Array.from(p.layouts.flatMap((l) => l.doc.flatMap((x, i) => [x, l.span[i]!])));
  const rows = batch * heads * Math.max(t, s);
  const fresh = () => ({
    res: new Float32Array(rows * d).fill(NaN),
    res2: new Float32Array(rows * d).fill(NaN),
  });
  const common = { q: p.q, k: p.k, v: p.v, dout: p.dout, positions, oob: new Float32Array(1) };
  const run = async (
    kernel: ReturnType<typeof flashAttentionForward>,
    lse: Float32Array,
    delta: Float32Array,
  ) => {
    const out = await runKernel(kernel, { ...common, lse, delta, ...fresh() }, ["res", "res2", "oob"]);
    assert.equal(new Float32Array(out.oob!)[0], 0, `${kernel.name}: an index left its range`);
    return [new Float32Array(out.res!), new Float32Array(out.res2!)] as const;
  };
  const none = new Float32Array(batch * heads * t);
  const [oAll, lseAll] = await run(flashAttentionForward("fa_fwd", shape, io, variant), none, none);
  const o = oAll.slice(0, batch * heads * t * d);
  const lse = Float32Array.from({ length: batch * heads * t }, (_, r) => lseAll[r * d]!);
  const delta = Float32Array.from({ length: batch * heads * t }, (_, r) => {
    let sum = 0;
    for (let x = 0; x < d; x++) sum += p.dout[r * d + x]! * o[r * d + x]!;
    return sum;
  });
  const [dq] = await run(flashAttentionBackwardQ("fa_dq", shape, io, variant), lse, delta);
  const [dk, dv] = await run(flashAttentionBackwardKV("fa_dkv", shape, io, variant), lse, delta);
  const keys = batch * heads * s * d;
  return { o, lse, dq: dq.slice(0, batch * heads * t * d), dk: dk.slice(0, keys), dv: dv.slice(0, keys) };
}

/** max |got - want| <= 2e-5 * (1 + max |want|), and every element written. */
function assertClose(got: Float32Array, want: Float64Array, what: string): number {
  assert.equal(got.length, want.length, `${what}: length`);
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const tolerance = 2e-5 * (1 + scale);
  let worst = 0;
  for (let e = 0; e < want.length; e++) {
    const err = Math.abs(got[e]! - want[e]!);
    if (!(err <= tolerance)) {
      assert.fail(`${what}: element ${e} is ${got[e]}, expected ${want[e]} (tolerance ${tolerance})`);
    }
    worst = Math.max(worst, err);
  }
  return worst;
}

async function checkAgainstReference(
  p: Problem,
  variant: AttentionVariant,
  classify: Classify,
  where: string,
) {
  const { shape } = p;
  const scale = 1 / Math.sqrt(shape.d);
  const allowed = allowedBy(p.layouts);
  const got = await runAll(p, variant, classify);
  const ref = attentionForwardRef(p.q, p.k, p.v, shape, scale, allowed);
  assertClose(got.o, ref.o, `${where}: o`);
  assertClose(got.lse, ref.lse, `${where}: lse`);
  // The backward reference sees the device's o and lse, as the kernels did.
  const grads = attentionBackwardRef(p.q, p.k, p.v, got.o, got.lse, p.dout, shape, scale, allowed);
  assertClose(got.dq, grads.dq, `${where}: dq`);
  assertClose(got.dk, grads.dk, `${where}: dk`);
  assertClose(got.dv, grads.dv, `${where}: dv`);
  return got;
}

/** Each adapter class's default, which the head size sweep adapts to d. */
const VARIANTS: readonly AttentionVariant[] = [
  defaultAttentionVariant("cpu", { batch: 1, heads: 2, t: 64, s: 64, d: 32 }),
  defaultAttentionVariant("gpu", { batch: 1, heads: 2, t: 64, s: 64, d: 32 }),
];
/** Small tiles, so that a 37-long sequence has tiles of every class. */
const SMALL_TILES: readonly AttentionVariant[] = [
  { kind: "rows", blockQ: 8, blockK: 4, perThread: 2 },
  { kind: "tiled", blockQ: 8, blockK: 4, lanes: 2 },
];

// ---- Tests ----

for (const variant of [...VARIANTS, ...SMALL_TILES]) {
  Deno.test(`flash attention ${attentionVariantName(variant)}: every mask scenario`, async (t) => {
    for (const [n, scenario] of SCENARIOS.entries()) {
      for (const classify of ["exact", "none"] as const) {
        const layouts = scenario.layouts(37);
        const shape = { batch: layouts.length, heads: 2, t: 37, s: 37, d: 32 };
        await t.step(`${scenario.name}, tile classes ${classify}`, async () => {
          await checkAgainstReference(problem(shape, layouts, 10 * n), variant, classify, scenario.name);
        });
      }
    }
  });
}

// The cpu default for short rows (kernels/flash_attention.ts shortRows): the demo spec's 41 positions at
// head dim 16 in one block of 8 invocations x 6 rows, every mask scenario.
Deno.test("flash attention, cpu short-row default at t 41, d 16: every mask scenario", async (t) => {
  const variant = defaultAttentionVariant("cpu", { batch: 1, heads: 2, t: 41, s: 41, d: 16 });
  assert.deepEqual(variant, { kind: "rows", blockQ: 48, blockK: 48, perThread: 6 });
  for (const [n, scenario] of SCENARIOS.entries()) {
    for (const classify of ["exact", "none"] as const) {
      const layouts = scenario.layouts(41);
      const shape = { batch: layouts.length, heads: 2, t: 41, s: 41, d: 16 };
      await t.step(`${scenario.name}, tile classes ${classify}`, async () => {
        await checkAgainstReference(problem(shape, layouts, 10 * n + 1), variant, classify, scenario.name);
      });
    }
  }
});

for (const variant of VARIANTS) {
  Deno.test(`flash attention ${attentionVariantName(variant)}: head sizes and ragged lengths`, async (t) => {
    // With the scenarios' d 32, t 37: every head size, and lengths below, inside and past one tile.
    const sizes = [[32, 1], [32, 7], [32, 100], [64, 37], [128, 100]] as const;
    for (const [n, [d, len]] of sizes.entries()) {
      const v = fitFor(variant, d);
      const scenario = SCENARIOS[(n + 1) % SCENARIOS.length]!;
      const layouts = scenario.layouts(len);
      const shape = { batch: layouts.length, heads: 1, t: len, s: len, d };
      await t.step(`d ${d}, t ${len}, ${attentionVariantName(v)}, ${scenario.name}`, async () => {
        await checkAgainstReference(problem(shape, layouts, d + len), v, "exact", `d ${d} t ${len}`);
      });
    }
  });
}

/** The variant itself when it fits head size d, else the adapter class's preferred one for d. */
function fitFor(variant: AttentionVariant, d: number): AttentionVariant {
  const shape = { batch: 1, heads: 1, t: 64, s: 64, d };
  const cls = variant.kind === "rows" ? "cpu" : "gpu";
  const options = attentionVariants(cls, shape).map((v) => JSON.stringify(v));
  return options.includes(JSON.stringify(variant)) ? variant : defaultAttentionVariant(cls, shape);
}

Deno.test("the kernels never index outside q, k, v, dO, lse, delta, the layout or the outputs", async (t) => {
  for (const variant of SMALL_TILES) {
    for (const len of [7, 37]) {
      const layouts = SCENARIOS.find((s) => s.name.startsWith("two packed"))!.layouts(len);
      const shape = { batch: layouts.length, heads: 2, t: len, s: len, d: 32 };
      await t.step(`${attentionVariantName(variant)}, t ${len}`, async () => {
        // runAll asserts that no access raised the flag; the values are checked elsewhere.
        const got = await runAll(problem(shape, layouts, len), variant, "exact", true);
        assert.ok(got.o.every(Number.isFinite) && got.dk.every(Number.isFinite));
      });
    }
  }
});

Deno.test("padding rows get o = 0, EMPTY_ROW_LSE and zero gradients", async () => {
  const layouts = SCENARIOS.find((s) => s.name === "padding")!.layouts(23);
  const padded = layouts[0]!.doc.map((x, i) => (x < 0 ? i : -1)).filter((i) => i >= 0);
  assert.ok(padded.length > 0);
  const shape = { batch: 1, heads: 1, t: 23, s: 23, d: 32 };
  for (const variant of VARIANTS) {
    const got = await runAll(problem(shape, layouts, 7), variant, "exact");
    for (const i of padded) {
      assert.equal(got.lse[i], Math.fround(EMPTY_ROW_LSE));
      for (let x = 0; x < 32; x++) {
        for (const [name, data] of Object.entries({ o: got.o, dq: got.dq, dk: got.dk, dv: got.dv })) {
          assert.equal(data[i * 32 + x], 0, `${attentionVariantName(variant)}: ${name}[${i}, ${x}]`);
        }
      }
    }
  }
});

Deno.test("a document's outputs ignore another document's values bit for bit", async () => {
  const t = 29;
  const layouts = [layoutOf(t, [[0, 4], [0, 6, true], [0, 3], [1, 5, true], [1, t]])];
  const shape = { batch: 1, heads: 2, t, s: t, d: 32 };
  const doc0 = layouts[0]!.doc.map((x, i) => (x === 0 ? i : -1)).filter((i) => i >= 0);
  const base = problem(shape, layouts, 3);
  // Every value of document 1 changes, in both heads.
  const perturb = (x: Float32Array<ArrayBuffer>, seed: number) => {
    const noise = random(x.length, seed, 5);
    return x.map((value, e) => (doc0.includes(Math.floor(e / 32) % t) ? value : value + noise[e]!));
  };
  const changed = {
    ...base,
    q: perturb(base.q, 1),
    k: perturb(base.k, 2),
    v: perturb(base.v, 3),
    dout: perturb(base.dout, 4),
  };
  for (const variant of VARIANTS) {
    for (const classify of ["exact", "none"] as const) {
      const [a, b] = [await runAll(base, variant, classify), await runAll(changed, variant, classify)];
      for (let h = 0; h < 2; h++) {
        for (const i of doc0) {
          const row = h * t + i;
          assert.equal(a.lse[row], b.lse[row]);
          for (const key of ["o", "dq", "dk", "dv"] as const) {
            const [x, y] = [
              a[key].subarray(row * 32, row * 32 + 32),
              b[key].subarray(row * 32, row * 32 + 32),
            ];
            assert.deepEqual(x, y, `${attentionVariantName(variant)} ${classify}: ${key} row ${i} head ${h}`);
          }
        }
      }
    }
  }
});

Deno.test("reference: one allowed key gives o = v and lse = its score", () => {
  const shape = { batch: 1, heads: 1, t: 2, s: 2, d: 3 };
  const q = Float64Array.of(1, 2, 3, 0.5, -1, 2);
  const k = Float64Array.of(0.1, 0.2, 0.3, -1, 1, 0.5);
  const v = Float64Array.of(4, 5, 6, 7, 8, 9);
  // Row 0 sees key 1 only; row 1 sees nothing.
  const { o, lse } = attentionForwardRef(q, k, v, shape, 0.5, (_b, i, j) => i === 0 && j === 1);
  assert.deepEqual([...o], [7, 8, 9, 0, 0, 0]);
  assert.equal(lse[0], 0.5 * (1 * -1 + 2 * 1 + 3 * 0.5));
  assert.equal(lse[1], EMPTY_ROW_LSE);
});

Deno.test("reference backward matches finite differences of the reference forward", () => {
  const layouts = [layoutOf(6, [[0, 1], [0, 3, true], [0, 1], [-1, 6]])];
  const shape = { batch: 1, heads: 2, t: 6, s: 6, d: 3 };
  const allowed = allowedBy(layouts);
  const scale = 0.7;
  const [q, k, v, g] = [1, 2, 3, 4].map((seed) => Float64Array.from(random(2 * 6 * 3, seed)));
  // loss = sum(o * g): its gradient with respect to o is g.
  const loss = () =>
    attentionForwardRef(q!, k!, v!, shape, scale, allowed).o.reduce((a, x, e) => a + x * g![e]!, 0);
  const { o, lse } = attentionForwardRef(q!, k!, v!, shape, scale, allowed);
  const grads = attentionBackwardRef(q!, k!, v!, o, lse, g!, shape, scale, allowed);
  const step = 1e-6;
  for (
    const [name, x, analytic] of [["q", q!, grads.dq], ["k", k!, grads.dk], ["v", v!, grads.dv]] as const
  ) {
    for (let e = 0; e < x.length; e++) {
      const keep = x[e]!;
      x[e] = keep + step;
      const up = loss();
      x[e] = keep - step;
      const down = loss();
      x[e] = keep;
      const numeric = (up - down) / (2 * step);
      assert.ok(Math.abs(numeric - analytic[e]!) < 1e-7, `d${name}[${e}]: ${analytic[e]} vs ${numeric}`);
    }
  }
  assert.ok(grads.dq.some((x) => x !== 0) && grads.dk.some((x) => x !== 0));
});

Deno.test("variant lists: the default comes first, and every candidate builds", () => {
  for (const cls of ["cpu", "gpu"] as const) {
    for (const d of [32, 64, 128]) {
      const shape = { batch: 1, heads: 1, t: 50, s: 50, d };
      const variants = attentionVariants(cls, shape);
      assert.deepEqual(variants[0], defaultAttentionVariant(cls, shape));
      const io = testIO(shape, "exact");
      for (const v of variants) {
        const threads = flashAttentionForward("x", shape, io, v).workgroupSize[0];
        assert.ok(threads >= 8 && threads <= 256, `${attentionVariantName(v)}: ${threads} invocations`);
        flashAttentionBackwardQ("x", shape, io, v);
        flashAttentionBackwardKV("x", shape, io, v);
      }
    }
  }
  assert.throws(
    () =>
      flashAttentionForward(
        "x",
        { batch: 1, heads: 1, t: 4, s: 4, d: 30 },
        testIO({ batch: 1, heads: 1, t: 4, s: 4, d: 30 }, "none"),
        { kind: "tiled", blockQ: 8, blockK: 8, lanes: 4 },
      ),
    /multiple of lanes/,
  );
  assert.throws(
    () =>
      flashAttentionForward(
        "x",
        { batch: 1, heads: 1, t: 4, s: 4, d: 128 },
        testIO({ batch: 1, heads: 1, t: 4, s: 4, d: 128 }, "none"),
        { kind: "tiled", blockQ: 64, blockK: 64, lanes: 4 },
      ),
    /workgroup memory/,
  );
});
