/**
 * Register-tile matmuls whose store is costly (a fused epilogue of many ops) write it once in a loop
 * over the tile instead of unrolled tm x tn times (lavapipe compiles each copy: the KV-cache score
 * kernels took 60-100 s to compile unrolled). Both forms must store the same values, every output
 * exactly once, and none outside the matrix, on shapes that are not multiples of the tiles.
 */
import assert from "node:assert/strict";
import { type MatmulShape, type MatmulVariant, variantName } from "../kernels/matmul.ts";
import { STORE_LOOP_OPS } from "../kernels/matmul_common.ts";
import { checkVariant, layoutName, LAYOUTS } from "./fixtures/matmul_fixtures.ts";

const VARIANTS: readonly MatmulVariant[] = [
  { kind: "register", tm: 8, tn: 16, wgX: 8, wgY: 1 },
  { kind: "register", tm: 4, tn: 4, wgX: 8, wgY: 8 },
  { kind: "vector", tm: 8, tn: 16, wgX: 8, wgY: 1 },
  { kind: "vector", tm: 4, tn: 8, wgX: 8, wgY: 2 },
];
// The demo's score shape (16 queries x 41 keys, head dim 32, per batch x head), and ragged edges.
const SHAPES: readonly MatmulShape[] = [
  { batch: 3, m: 16, n: 41, k: 32 },
  { batch: 1, m: 37, n: 20, k: 12 },
];
const LOOPED = /for \(var mm_e = 0u;/;

Deno.test("a costly store is looped over the tile and stores what the unrolled stores do", async (t) => {
  for (const variant of VARIANTS) {
    const vector = variant.kind === "vector";
    for (const [s, shape] of SHAPES.entries()) {
      const layout = LAYOUTS[(s + VARIANTS.indexOf(variant)) % LAYOUTS.length]!;
      const label = `${variantName(variant)}, ${JSON.stringify(shape)}, ${layoutName(layout)}`;
      await t.step(label, async () => {
        const costly = STORE_LOOP_OPS; // over the budget for any tile of more than one output
        const looped = await checkVariant(variant, shape, layout, 7 + s, vector, costly);
        const plain = await checkVariant(variant, shape, layout, 7 + s, vector, 0);
        assert.match(looped.kernel.wgsl, LOOPED, `${label}: the costly store is not looped`);
        assert.doesNotMatch(plain.kernel.wgsl, LOOPED, `${label}: a plain store was looped`);
        assert.equal(looped.worst, plain.worst, `${label}: the looped stores differ from the unrolled`);
      });
    }
  }
});
