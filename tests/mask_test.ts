import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { node } from "../compiler/ir/mod.ts";
import {
  ALL_LAYOUT_FIELDS,
  classifyTile,
  denseMask,
  describeMask,
  fieldRanges,
  type LayoutField,
  maskAt,
  type MaskExpr,
  maskFields,
  type TileClass,
  tileStats,
} from "../compiler/ir/mask.ts";
import type { Kernel } from "../kernels/kernel.ts";
import { maskPredicateWgsl, TILE_CLASS_CODE, tileClassWgsl } from "../kernels/mask_wgsl.ts";
import type { Layout } from "../spec/layout.ts";
import { buildLayout, layoutInputName } from "../spec/layout_builder.ts";
import {
  all,
  causal,
  inPrefix,
  Mask,
  maskDense,
  none,
  prefix,
  sameDocument,
  sameSpan,
  window,
} from "../spec/mask.ts";
import { Tensor } from "../spec/tensor.ts";
import {
  type AllFields,
  drawn,
  drawnFields,
  randInt,
  randomFields,
  randomLayout,
  randomMask,
  seeded,
} from "./layout_cases.ts";
import { runKernel } from "./gpu_harness.ts";

const TRANSFUSION = sameDocument().and(causal().or(sameSpan("image")));
/** A prefix-LM over packed documents: each document's prefix is seen whole, the rest causally. */
const PREFIX_LM = sameDocument().and(causal().or(inPrefix()));

/** Rows of a [B, T, T] 0/1 array as arrays, for readable diffs against the drawn matrices. */
function matrices(dense: ArrayLike<number>, B: number, T: number): number[][][] {
  return Array.from(
    { length: B },
    (_, b) =>
      Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => dense[(b * T + i) * T + j]!)),
  );
}

function cpuMatrices(mask: Mask, name: string): number[][][] {
  const d = drawn(name);
  return matrices(denseMask(mask.expr, drawnFields(d), d.B, d.T), d.B, d.T);
}

Deno.test("masks on hand-drawn layouts give the hand-drawn matrices", async (t) => {
  await t.step("Transfusion mask, text only: causal", () => {
    assert.deepEqual(cpuMatrices(TRANSFUSION, "text only"), [[
      [1, 0, 0, 0],
      [1, 1, 0, 0],
      [1, 1, 1, 0],
      [1, 1, 1, 1],
    ]]);
  });
  await t.step("Transfusion mask, caption then image: patches see their whole image", () => {
    // t t B p p p p E
    assert.deepEqual(cpuMatrices(TRANSFUSION, "caption then a 2x2 image"), [[
      [1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ]]);
  });
  await t.step("Transfusion mask, image first then text, padding sees and is seen by nothing", () => {
    // B p p E t t .
    assert.deepEqual(cpuMatrices(TRANSFUSION, "a 1x2 image then text"), [[
      [1, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 0, 0],
    ]]);
  });
  await t.step("Transfusion mask, two images: no patch sees a later image", () => {
    // t B p p E B p p E
    assert.deepEqual(cpuMatrices(TRANSFUSION, "two images"), [[
      [1, 0, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1, 1],
    ]]);
  });
  await t.step("Transfusion mask, two packed documents: block diagonal", () => {
    // t t | B p p E t
    assert.deepEqual(cpuMatrices(TRANSFUSION, "two packed documents"), [[
      [1, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0],
      [0, 0, 1, 0, 0, 0, 0],
      [0, 0, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 1, 0],
      [0, 0, 1, 1, 1, 1, 1],
    ]]);
  });
  await t.step("padding rows: sameDocument masks them, causal alone does not", () => {
    // t t . / . . .
    assert.deepEqual(cpuMatrices(TRANSFUSION, "padding rows"), [
      [[1, 0, 0], [1, 1, 0], [0, 0, 0]],
      [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
    ]);
    assert.deepEqual(cpuMatrices(causal(), "padding rows"), [
      [[1, 0, 0], [1, 1, 0], [1, 1, 1]],
      [[1, 0, 0], [1, 1, 0], [1, 1, 1]],
    ]);
  });
  await t.step("prefix, window, not, all, none", () => {
    const text = "text only";
    assert.deepEqual(cpuMatrices(prefix(2), text), [[[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [
      1,
      1,
      0,
      0,
    ]]]);
    assert.deepEqual(cpuMatrices(window(2), text), [[[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [
      0,
      0,
      1,
      1,
    ]]]);
    assert.deepEqual(cpuMatrices(causal().not(), text), [[[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [
      0,
      0,
      0,
      0,
    ]]]);
    assert.deepEqual(cpuMatrices(causal().and(window(2)).or(prefix(1)), text), [[
      [1, 0, 0, 0],
      [1, 1, 0, 0],
      [1, 1, 1, 0],
      [1, 0, 1, 1],
    ]]);
    assert.deepEqual(cpuMatrices(all(), "padding rows")[1], [[1, 1, 1], [1, 1, 1], [1, 1, 1]]);
    assert.deepEqual(cpuMatrices(none(), text), [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]);
  });
  await t.step("prefix-LM, each row its own prefix length (layout data, one rule)", () => {
    // P P P t t . / P t t t t t
    assert.deepEqual(cpuMatrices(PREFIX_LM, "prefix-LM rows"), [
      [
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
      ],
      [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
      ],
    ]);
    // Without sameDocument the padding query still sees the prefix: inPrefix reads only the key.
    assert.deepEqual(cpuMatrices(causal().or(inPrefix()), "prefix-LM rows")[0]![5], [1, 1, 1, 1, 1, 1]);
  });
  await t.step("packed documents with their own prefixes: block diagonal, each block a prefix-LM", () => {
    // P P t | P B p p E t  (doc 1's prefix holds an image, BOI and EOI)
    assert.deepEqual(cpuMatrices(PREFIX_LM, "packed prefix documents"), [[
      [1, 1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1, 1],
    ]]);
  });
  await t.step("sameSpan(text) holds nowhere: text has no span", () => {
    const m = new Mask({ kind: "sameSpan", modality: 0 });
    assert.ok(cpuMatrices(m, "caption then a 2x2 image")[0]!.every((r) => r.every((v) => v === 0)));
  });
  await t.step("maskAt agrees with denseMask", () => {
    const d = drawn("two packed documents");
    const f = drawnFields(d);
    assert.equal(maskAt(TRANSFUSION.expr, f, d.T, 0, 4, 3), true);
    assert.equal(maskAt(TRANSFUSION.expr, f, d.T, 0, 3, 4), true);
    assert.equal(maskAt(TRANSFUSION.expr, f, d.T, 0, 2, 1), false);
    assert.equal(maskAt(TRANSFUSION.expr, f, d.T, 0, 5, 6), false);
  });
});

Deno.test("describeMask and maskFields", () => {
  assert.equal(describeMask(TRANSFUSION.expr), "sameDocument & (causal | sameSpan(image))");
  assert.equal(String(causal().and(window(3)).and(prefix(2)).not()), "!(causal & window(3) & prefix(2))");
  assert.equal(describeMask({ kind: "sameSpan", modality: 7 }), "sameSpan(modality 7)");
  assert.deepEqual(maskFields(TRANSFUSION.expr), ["doc", "modality", "span"]);
  assert.deepEqual(maskFields(causal().and(window(2)).expr), []);
  assert.deepEqual(maskFields(PREFIX_LM.expr), ["doc", "prefix"]);
  assert.deepEqual(PREFIX_LM.fields(), ["doc", "prefix"]);
  assert.equal(String(PREFIX_LM), "sameDocument & (causal | inPrefix)");
  // JSON-serializable: it becomes an IR op argument.
  assert.deepEqual(JSON.parse(JSON.stringify(TRANSFUSION.expr)), TRANSFUSION.expr);
});

Deno.test("the DSL constructors reject bad arguments", () => {
  assert.throws(() => prefix(-1), /n must be an integer >= 0, got -1/);
  assert.throws(() => window(0), /w must be an integer >= 1, got 0/);
  assert.throws(() => window(1.5), /w must be an integer >= 1/);
  assert.throws(() => sameSpan("audio" as "image"), /unknown modality "audio"; known: text, image/);
});

// ---------------------------------------------------------------------------------------------
// maskDense (DSL, interpreted) against denseMask (CPU)

function layoutNodes(B: number, T: number): Layout<LayoutField> {
  const make = (f: LayoutField) =>
    new Tensor<"i32", 2>(node("input", [], { name: layoutInputName(f), shape: [B, T], dtype: "i32" }));
  return Object.fromEntries(ALL_LAYOUT_FIELDS.map((f) => [f, make(f)])) as Layout<LayoutField>;
}

function interpretedMask(mask: Mask, fields: AllFields, B: number, T: number): Float64Array {
  const dense = maskDense(mask, layoutNodes(B, T));
  assert.deepEqual(dense.shape, [B, T, T]);
  assert.equal(dense.dtype, "bool");
  const inputs = Object.fromEntries(ALL_LAYOUT_FIELDS.map((f) => [layoutInputName(f), fields[f]]));
  return interpret([dense.node], { inputs })[0]!.data;
}

Deno.test("maskDense (interpreted) equals denseMask (CPU)", async (t) => {
  await t.step("Transfusion mask on every drawn layout", () => {
    for (const name of ["text only", "caption then a 2x2 image", "two images", "padding rows"]) {
      const d = drawn(name);
      const f = drawnFields(d);
      assert.deepEqual(
        Array.from(interpretedMask(TRANSFUSION, f, d.B, d.T)),
        Array.from(denseMask(TRANSFUSION.expr, f, d.B, d.T)),
        name,
      );
    }
  });
  await t.step("the prefix-LM mask on the drawn prefix layouts", () => {
    for (const name of ["prefix-LM rows", "packed prefix documents"]) {
      const d = drawn(name);
      const f = drawnFields(d);
      assert.deepEqual(
        Array.from(interpretedMask(PREFIX_LM, f, d.B, d.T)),
        Array.from(denseMask(PREFIX_LM.expr, f, d.B, d.T)),
        name,
      );
    }
  });
  await t.step("random rules on random layouts", () => {
    const rand = seeded(7);
    for (let c = 0; c < 40; c++) {
      const { B, T, fields } = randomLayout(rand, 3, 20);
      const expr = randomMask(rand, 3, T);
      assert.deepEqual(
        Array.from(interpretedMask(new Mask(expr), fields, B, T)),
        Array.from(denseMask(expr, fields, B, T)),
        `case ${c}: ${describeMask(expr)}`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// tile classification

/** The true class of a tile, by looking at every element. */
function bruteClass(
  expr: MaskExpr,
  f: AllFields,
  T: number,
  b: number,
  q: [number, number],
  k: [number, number],
) {
  let [some, every] = [false, true];
  for (let i = q[0]; i <= q[1]; i++) {
    for (let j = k[0]; j <= k[1]; j++) {
      const v = maskAt(expr, f, T, b, i, j);
      some ||= v;
      every &&= v;
    }
  }
  return { some, every };
}

Deno.test("classifyTile is sound and useful", async (t) => {
  await t.step("never => every element false, always => every element true (random cases)", () => {
    const rand = seeded(11);
    const seen: Record<TileClass, number> = { never: 0, always: 0, maybe: 0 };
    for (let c = 0; c < 3000; c++) {
      const structured = c % 3 !== 0;
      const layout = structured ? randomLayout(rand, 2, 48) : undefined;
      const [B, T] = layout ? [layout.B, layout.T] : [randInt(rand, 1, 2), randInt(rand, 1, 24)];
      const fields = layout ? layout.fields : randomFields(rand, B, T);
      const expr = randomMask(rand, 3, T);
      const b = randInt(rand, 0, B - 1);
      const range = (): [number, number] => {
        const first = randInt(rand, 0, T - 1);
        return [first, randInt(rand, first, Math.min(T - 1, first + randInt(rand, 0, 16)))];
      };
      const [q, k] = [range(), range()];
      const cls = classifyTile(expr, fieldRanges(fields, T, b, ...q), fieldRanges(fields, T, b, ...k));
      seen[cls]++;
      const truth = bruteClass(expr, fields, T, b, q, k);
      const where = `case ${c}: ${describeMask(expr)}, row ${b}, q ${q}, k ${k}`;
      if (cls === "never") assert.equal(truth.some, false, `said never, but some pair attends; ${where}`);
      if (cls === "always") assert.equal(truth.every, true, `said always, but some pair is masked; ${where}`);
    }
    // The property is not vacuous: the classifier commits often.
    assert.ok(seen.never > 300 && seen.always > 300, JSON.stringify(seen));
  });
  await t.step("the Transfusion mask commits on tiles inside one document", () => {
    const { fields, T } = buildLayout([[{ kind: "text", length: 8, doc: 0 }, {
      kind: "image",
      rows: 4,
      cols: 4,
      doc: 0,
      markers: false,
    }, { kind: "text", length: 8, doc: 1 }]], 32);
    const r = (a: number, z: number) => fieldRanges(fields, T, 0, a, z);
    assert.equal(classifyTile(TRANSFUSION.expr, r(8, 23), r(8, 23)), "always"); // the image with itself
    assert.equal(classifyTile(TRANSFUSION.expr, r(0, 7), r(8, 15)), "never"); // caption before the image
    assert.equal(classifyTile(TRANSFUSION.expr, r(24, 31), r(0, 7)), "never"); // another document
    assert.equal(classifyTile(TRANSFUSION.expr, r(8, 15), r(0, 7)), "always"); // patches see the caption
    assert.equal(classifyTile(TRANSFUSION.expr, r(4, 11), r(4, 11)), "maybe");
  });
  await t.step("causal text-only, 16x16 tiles: more than 40% of the tiles are skipped", () => {
    const { fields, B, T } = buildLayout([[{ kind: "text", length: 256, doc: 0 }]], 256);
    for (const mask of [causal(), TRANSFUSION]) {
      const s = tileStats(mask.expr, fields, B, T, 16, 16);
      assert.equal(s.tiles, 256);
      assert.ok(s.skipped / s.tiles > 0.4, `${mask}: ${JSON.stringify(s)}`);
    }
  });
});

Deno.test("tileStats counts", async (t) => {
  const text = (T: number, B = 1) =>
    buildLayout(Array.from({ length: B }, () => [{ kind: "text", length: T, doc: 0 }]), T);
  await t.step("causal, T = 64, 16x16, two rows: per row 6 skipped, 6 full, 4 on the diagonal", () => {
    const { fields, B, T } = text(64, 2);
    assert.deepEqual(tileStats(causal().expr, fields, B, T, 16, 16), {
      tiles: 32,
      skipped: 12,
      full: 12,
      partial: 8,
    });
  });
  await t.step("T not a multiple of the block: the last tiles are short", () => {
    const { fields, B, T } = text(50);
    assert.deepEqual(tileStats(causal().expr, fields, B, T, 16, 16), {
      tiles: 16,
      skipped: 6,
      full: 6,
      partial: 4,
    });
  });
  await t.step("blockQ != blockK", () => {
    const { fields, B, T } = text(64);
    // q [0,31] x k [0,15] [16,31] maybe, [32..] never; q [32,63] x k [0,31] always, [32..] maybe
    assert.deepEqual(tileStats(causal().expr, fields, B, T, 32, 16), {
      tiles: 8,
      skipped: 2,
      full: 2,
      partial: 4,
    });
  });
  await t.step("all and none", () => {
    const { fields, B, T } = text(40);
    assert.deepEqual(tileStats(all().expr, fields, B, T, 16, 8), {
      tiles: 15,
      skipped: 0,
      full: 15,
      partial: 0,
    });
    assert.deepEqual(tileStats(none().expr, fields, B, T, 16, 8), {
      tiles: 15,
      skipped: 15,
      full: 0,
      partial: 0,
    });
  });
  await t.step("a packed batch: the counts agree with classifying each tile", () => {
    const rand = seeded(5);
    const { fields, B, T } = randomLayout(rand, 3, 96);
    const s = tileStats(TRANSFUSION.expr, fields, B, T, 16, 8);
    const counts = { never: 0, always: 0, maybe: 0 };
    for (let b = 0; b < B; b++) {
      for (let q = 0; q < T; q += 16) {
        for (let k = 0; k < T; k += 8) {
          const qr = fieldRanges(fields, T, b, q, Math.min(q + 16, T) - 1);
          counts[classifyTile(TRANSFUSION.expr, qr, fieldRanges(fields, T, b, k, Math.min(k + 8, T) - 1))]++;
        }
      }
    }
    assert.deepEqual(s, {
      tiles: B * Math.ceil(T / 16) * Math.ceil(T / 8),
      skipped: counts.never,
      full: counts.always,
      partial: counts.maybe,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// WGSL, run on the GPU against the CPU

const declare = (name: string, binding: number, type: string, access: "read" | "read_write") =>
  `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${type}>;`;

function testKernel(
  name: string,
  wgsl: string,
  count: number,
  buffers: readonly [string, "read" | "read_write"][],
): Kernel {
  return {
    name,
    doc: "mask test kernel",
    ops: [],
    wgsl,
    workgroupSize: [64, 1, 1],
    dispatch: [Math.ceil(count / 64), 1, 1],
    bindings: buffers.map(([buffer, access], binding) => ({ binding, buffer, access })),
    flops: 0,
    bytes: 0,
  };
}

/** The dense mask computed by `maskPredicateWgsl`, one invocation per (b, i, j). */
async function gpuDenseMask(
  expr: MaskExpr,
  fields: AllFields,
  B: number,
  T: number,
): Promise<Uint32Array> {
  const count = B * T * T;
  const at = (f: LayoutField, pos: string) =>
    `fields[${ALL_LAYOUT_FIELDS.indexOf(f) * B * T}u + b * ${T}u + ${pos}]`;
  const predicate = maskPredicateWgsl(expr, { index: "i", field: (f) => at(f, "i") }, {
    index: "j",
    field: (f) => at(f, "j"),
  });
  const wgsl = `${declare("fields", 0, "i32", "read")}
${declare("out", 1, "u32", "read_write")}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let flat = gid.x;
  if (flat >= ${count}u) { return; }
  let b = flat / ${T * T}u;
  let i = (flat / ${T}u) % ${T}u;
  let j = flat % ${T}u;
  out[flat] = select(0u, 1u, ${predicate});
}`;
  const packed = new Int32Array(ALL_LAYOUT_FIELDS.length * B * T);
  ALL_LAYOUT_FIELDS.forEach((f, n) => packed.set(fields[f], n * B * T));
  const kernel = testKernel("mask_predicate_test", wgsl, count, [["fields", "read"], ["out", "read_write"]]);
  const out = await runKernel(kernel, { fields: packed, out: new Uint32Array(count) }, ["out"]);
  return new Uint32Array(out.out!);
}

/** Ranges packed as 2 + 14 i32 per tile: first, last, min of each field, max of each field. */
const RANGE_WORDS = 2 + 2 * ALL_LAYOUT_FIELDS.length;

async function gpuTileClasses(
  expr: MaskExpr,
  cases: readonly [ReturnType<typeof fieldRanges>, ReturnType<typeof fieldRanges>][],
) {
  const ranges = new Int32Array(cases.length * 2 * RANGE_WORDS);
  cases.forEach((pair, c) =>
    pair.forEach((r, side) => {
      const o = (2 * c + side) * RANGE_WORDS;
      ranges.set([
        r.first,
        r.last,
        ...ALL_LAYOUT_FIELDS.map((f) => r.min[f]!),
        ...ALL_LAYOUT_FIELDS.map((f) => r.max[f]!),
      ], o);
    })
  );
  const side = (base: string) => ({
    first: `ranges[${base}]`,
    last: `ranges[${base} + 1u]`,
    min: (f: LayoutField) => `ranges[${base} + ${2 + ALL_LAYOUT_FIELDS.indexOf(f)}u]`,
    max: (f: LayoutField) =>
      `ranges[${base} + ${2 + ALL_LAYOUT_FIELDS.length + ALL_LAYOUT_FIELDS.indexOf(f)}u]`,
  });
  const wgsl = `${declare("ranges", 0, "i32", "read")}
${declare("out", 1, "u32", "read_write")}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= ${cases.length}u) { return; }
  let qb = c * ${2 * RANGE_WORDS}u;
  let kb = qb + ${RANGE_WORDS}u;
  out[c] = ${tileClassWgsl(expr, side("qb"), side("kb"))};
}`;
  const kernel = testKernel("mask_tile_class_test", wgsl, cases.length, [["ranges", "read"], [
    "out",
    "read_write",
  ]]);
  const out = await runKernel(kernel, { ranges, out: new Uint32Array(cases.length) }, ["out"]);
  return new Uint32Array(out.out!);
}

const NAMED_RULES: readonly MaskExpr[] = [
  TRANSFUSION.expr,
  all().expr,
  none().expr,
  causal().expr,
  sameDocument().expr,
  sameSpan("image").expr,
  prefix(5).expr,
  window(3).expr,
  causal().not().expr,
  TRANSFUSION.not().and(window(4).or(prefix(2))).expr,
  inPrefix().expr,
  PREFIX_LM.expr,
  inPrefix().not().and(window(2)).expr,
];

Deno.test("maskPredicateWgsl on the GPU equals denseMask", async () => {
  const rand = seeded(23);
  const rules = [...NAMED_RULES, ...Array.from({ length: 12 }, () => randomMask(rand, 3, 24))];
  const packed = randomLayout(seeded(3), 3, 24);
  const drawnLayouts = [drawn("two images"), drawn("packed prefix documents")].map((d) => ({
    ...d,
    fields: drawnFields(d),
  }));
  for (const expr of rules) {
    for (const { fields, B, T } of [packed, ...drawnLayouts]) {
      const want = denseMask(expr, fields, B, T);
      const got = await gpuDenseMask(expr, fields, B, T);
      assert.deepEqual(Array.from(got), Array.from(want), describeMask(expr));
    }
    // Arbitrary field values too: the WGSL must mean the same rule everywhere, not only on good layouts.
    const fields = randomFields(rand, 2, 12);
    assert.deepEqual(
      Array.from(await gpuDenseMask(expr, fields, 2, 12)),
      Array.from(denseMask(expr, fields, 2, 12)),
    );
  }
});

Deno.test("tileClassWgsl on the GPU equals classifyTile", async () => {
  const rand = seeded(29);
  const rules = [...NAMED_RULES, ...Array.from({ length: 16 }, () => randomMask(rand, 4, 40))];
  for (const expr of rules) {
    const cases: [ReturnType<typeof fieldRanges>, ReturnType<typeof fieldRanges>][] = [];
    for (let c = 0; c < 300; c++) {
      const structured = c % 2 === 0;
      const layout = structured ? randomLayout(rand, 2, 40) : undefined;
      const [B, T] = layout ? [layout.B, layout.T] : [1, randInt(rand, 1, 24)];
      const fields = layout ? layout.fields : randomFields(rand, B, T);
      const b = randInt(rand, 0, B - 1);
      const range = () => {
        const first = randInt(rand, 0, T - 1);
        return fieldRanges(fields, T, b, first, randInt(rand, first, Math.min(T - 1, first + 15)));
      };
      cases.push([range(), range()]);
    }
    const got = await gpuTileClasses(expr, cases);
    const want = cases.map(([q, k]) => TILE_CLASS_CODE[classifyTile(expr, q, k)]);
    assert.deepEqual(Array.from(got), want, describeMask(expr));
  }
});
