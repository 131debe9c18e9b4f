/**
 * The `vector` matmul variant: vec4 operand loads and result stores in every operand layout, against the interpreter,
 * and its fallback to the scalar register kernel where a vectorized dim does not split into vec4s.
 */
import assert from "node:assert/strict";
import { type MatmulShape, type MatmulVariant, variantName } from "../kernels/matmul.ts";
import { checkVariant, layoutName, LAYOUTS } from "./fixtures/matmul_fixtures.ts";

const VARIANTS: readonly Extract<MatmulVariant, { kind: "vector" }>[] = [
  { kind: "vector", tm: 8, tn: 16, wgX: 8, wgY: 8 },
  { kind: "vector", tm: 16, tn: 16, wgX: 8, wgY: 2 },
  { kind: "vector", tm: 4, tn: 4, wgX: 8, wgY: 1 },
  { kind: "vector", tm: 1, tn: 16, wgX: 8, wgY: 1 },
];

// Multiples of 4 that are not multiples of the tiles (edge blocks clamp their loads), a batch, one tile.
const SHAPES: readonly MatmulShape[] = [
  { batch: 1, m: 4, n: 4, k: 4 },
  { batch: 1, m: 12, n: 20, k: 8 },
  { batch: 2, m: 36, n: 44, k: 28 },
  { batch: 1, m: 128, n: 128, k: 64 },
];

// Calls from the kernel body (the IO declares the vec4 loaders either way).
const CALLS_A4 = /load_lhs4\(mm_/;
const CALLS_B4 = /load_rhs4\(mm_/;
// Stores four adjacent columns at once (MatmulIO.store4), which the vector kernel's layout allows.
const STORES_4 = /store_out4\(mm_/;

Deno.test("vector matmuls read vec4s in every layout and match the interpreter", async (t) => {
  for (const variant of VARIANTS) {
    for (const [s, shape] of SHAPES.entries()) {
      for (const layout of LAYOUTS) {
        const label = `${variantName(variant)}, ${shape.batch}x${shape.m}x${shape.n}x${shape.k}, ${
          layoutName(layout)
        }`;
        await t.step(label, async () => {
          const { kernel } = await checkVariant(variant, shape, layout, 10 * s + 3, true);
          // A "m"-read A needs whole groups of four rows per thread: tm 1 is then the scalar kernel.
          const vectorized = !(layout.transposeA && variant.tm % 4 !== 0);
          assert.equal(CALLS_A4.test(kernel.wgsl), vectorized, `${label}: vec4 loads of A`);
          assert.equal(CALLS_B4.test(kernel.wgsl), vectorized, `${label}: vec4 loads of B`);
          assert.equal(STORES_4.test(kernel.wgsl), vectorized, `${label}: vec4 stores`);
        });
      }
    }
  }
});

Deno.test("a vector variant is its scalar twin where a dim is not a multiple of 4", async (t) => {
  const variant = VARIANTS[0]!;
  for (const shape of [{ batch: 1, m: 9, n: 13, k: 8 }, { batch: 1, m: 8, n: 16, k: 7 }]) {
    for (const layout of LAYOUTS) {
      await t.step(`${JSON.stringify(shape)} ${layoutName(layout)}`, async () => {
        const { kernel } = await checkVariant(variant, shape, layout, 7, true);
        const kNeeded = shape.k % 4 !== 0;
        const nNeeded = !layout.transposeB && shape.n % 4 !== 0;
        const mNeeded = layout.transposeA && shape.m % 4 !== 0;
        const fallsBack = kNeeded || nNeeded || mNeeded;
        assert.equal(CALLS_A4.test(kernel.wgsl), !fallsBack);
        // The scalar twin's columns interleave across threads: no run of four to store at once.
        assert.equal(STORES_4.test(kernel.wgsl), false);
        assert.match(kernel.doc, fallsBack ? /register 8x16/ : /vector 8x16/);
      });
    }
  }
});

Deno.test("without vector loads in the IO, a vector variant is the register kernel", async () => {
  const { kernel } = await checkVariant(VARIANTS[0]!, SHAPES[2]!, LAYOUTS[0]!, 5, false);
  assert.match(kernel.doc, /register 8x16 wg 8x8/);
});
