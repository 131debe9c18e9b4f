import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { node } from "../compiler/ir/mod.ts";
import { bindingDecl, type KernelBinding } from "../kernels/kernel.ts";
import {
  type AdapterClass,
  candidateVariants,
  defaultVariant,
  type MatmulIO,
  matmulKernel,
  type MatmulShape,
  type MatmulVariant,
  variantName,
} from "../kernels/matmul.ts";
import { runKernel } from "./gpu_harness.ts";

// Shapes that are not multiples of any tile, a batch, and one that is.
const SHAPES: readonly MatmulShape[] = [
  { batch: 1, m: 1, n: 1, k: 1 },
  { batch: 1, m: 7, n: 13, k: 5 },
  { batch: 1, m: 33, n: 65, k: 17 },
  { batch: 3, m: 17, n: 9, k: 31 },
  { batch: 1, m: 128, n: 128, k: 128 },
];

interface Layout {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
}
const LAYOUTS: readonly Layout[] = [false, true].flatMap((transposeA) =>
  [false, true].map((transposeB) => ({ transposeA, transposeB }))
);

/**
 * Operands in buffers `lhs` and `rhs` (stored transposed when the layout says so), read in place
 * through helper functions that raise a flag in `oob` when the kernel asks for an element outside
 * the matrices: the contract is that it never does.
 */
function checkedIO({ batch, m, n, k }: MatmulShape, layout: Layout): MatmulIO {
  const bindings: KernelBinding[] = [
    { binding: 0, buffer: "lhs", access: "read" },
    { binding: 1, buffer: "rhs", access: "read" },
    { binding: 2, buffer: "out", access: "read_write" },
    { binding: 3, buffer: "oob", access: "read_write" },
  ];
  const aIndex = layout.transposeA ? `kk * ${m}u + i` : `i * ${k}u + kk`;
  const bIndex = layout.transposeB ? `j * ${k}u + kk` : `kk * ${n}u + j`;
  return {
    declarations: `${bindings.map(bindingDecl).join("\n")}
fn load_lhs(b: u32, i: u32, kk: u32) -> f32 {
  if (b >= ${batch}u || i >= ${m}u || kk >= ${k}u) { oob[0] = 1.0; }
  return lhs[b * ${m * k}u + ${aIndex}];
}
fn load_rhs(b: u32, kk: u32, j: u32) -> f32 {
  if (b >= ${batch}u || kk >= ${k}u || j >= ${n}u) { oob[0] = 1.0; }
  return rhs[b * ${k * n}u + ${bIndex}];
}`,
    loadA: (b, i, kk) => `load_lhs(${b}, ${i}, ${kk})`,
    loadB: (b, kk, j) => `load_rhs(${b}, ${kk}, ${j})`,
    store: (b, i, j, value) => `out[${b} * ${m * n}u + ${i} * ${n}u + ${j}] = ${value};`,
    bindings,
  };
}

/** Deterministic uniform values in [-1, 1), rounded to f32. */
function randomMatrix(count: number, seed: number): Float32Array<ArrayBuffer> {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    state ^= state >>> 13;
    return (state / 2 ** 31) - 1;
  });
}

/** [batch, rows, cols] -> [batch, cols, rows]. */
function transpose(x: Float32Array<ArrayBuffer>, batch: number, rows: number, cols: number) {
  const out = new Float32Array(x.length);
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[b * rows * cols + c * rows + r] = x[b * rows * cols + r * cols + c]!;
    }
  }
  return out;
}

function reference(shape: MatmulShape, a: Float32Array, b: Float32Array): Float64Array {
  const { batch, m, n, k } = shape;
  const lhs = node("input", [], { name: "a", shape: [batch, m, k], dtype: "f32" });
  const rhs = node("input", [], { name: "b", shape: [batch, k, n], dtype: "f32" });
  const [c] = interpret([node("matmul", [lhs, rhs], null)], { inputs: { a, b } });
  return c!.data;
}

async function checkVariant(variant: MatmulVariant, shape: MatmulShape, layout: Layout, seed: number) {
  const { batch, m, n, k } = shape;
  const a = randomMatrix(batch * m * k, seed);
  const b = randomMatrix(batch * k * n, seed + 1);
  const kernel = matmulKernel("matmul_test", shape, checkedIO(shape, layout), variant);
  const out = await runKernel(kernel, {
    lhs: layout.transposeA ? transpose(a, batch, m, k) : a,
    rhs: layout.transposeB ? transpose(b, batch, k, n) : b,
    out: new Float32Array(batch * m * n).fill(NaN), // every element must be overwritten
    oob: new Float32Array(1),
  }, ["out", "oob"]);
  const where = `${variantName(variant)} on ${JSON.stringify(shape)} ${JSON.stringify(layout)}`;
  assert.equal(new Float32Array(out.oob!)[0], 0, `${where}: loaded outside the operands`);
  const got = new Float32Array(out.out!);
  const want = reference(shape, a, b);
  const scale = want.reduce((acc, x) => Math.max(acc, Math.abs(x)), 0);
  // f32 accumulation: error grows like sqrt(k) ulps of the largest value.
  const tolerance = 1e-4 * Math.sqrt(k) * scale;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(
      err <= tolerance,
      `${where}: element ${i} is ${got[i]}, expected ${want[i]} (tolerance ${tolerance})`,
    );
    worst = Math.max(worst, err);
  }
  return worst;
}

for (const adapterClass of ["cpu", "gpu"] as const satisfies readonly AdapterClass[]) {
  Deno.test(`every ${adapterClass} matmul variant matches the interpreter`, async (t) => {
    for (const [s, shape] of SHAPES.entries()) {
      const variants = candidateVariants(adapterClass, shape);
      for (const [v, variant] of variants.entries()) {
        await t.step(`${variantName(variant)}, ${shape.batch}x${shape.m}x${shape.n}x${shape.k}`, async () => {
          for (const [l, layout] of LAYOUTS.entries()) {
            await checkVariant(variant, shape, layout, 100 * s + 10 * v + l);
          }
        });
      }
    }
  });
}

Deno.test("the default variant is among the candidates and has a sane block", () => {
  for (const adapterClass of ["cpu", "gpu"] as const) {
    for (const shape of [...SHAPES, { batch: 1, m: 4096, n: 4096, k: 4096 }]) {
      const chosen = defaultVariant(adapterClass, shape);
      const candidates = candidateVariants(adapterClass, shape).map((v) => JSON.stringify(v));
      assert.ok(candidates.includes(JSON.stringify(chosen)), `${adapterClass} ${JSON.stringify(shape)}`);
      const kernel = matmulKernel("matmul_default", shape, checkedIO(shape, LAYOUTS[0]!), chosen);
      const threads = kernel.workgroupSize.reduce((x, y) => x * y);
      assert.ok(threads >= 32 && threads <= 256, `${variantName(chosen)}: ${threads} threads per workgroup`);
      assert.equal(kernel.flops, 2 * shape.batch * shape.m * shape.n * shape.k);
    }
  }
});

Deno.test("matmul rejects shapes it cannot cover", () => {
  const io = checkedIO({ batch: 1, m: 1, n: 1, k: 1 }, LAYOUTS[0]!);
  const variant = defaultVariant("cpu", { batch: 1, m: 1, n: 1, k: 1 });
  assert.throws(
    () => matmulKernel("bad", { batch: 1, m: 0, n: 4, k: 4 }, io, variant),
    /m must be a positive/,
  );
  assert.throws(() => matmulKernel("bad", { batch: 70000, m: 4, n: 4, k: 4 }, io, variant), /batch 70000/);
  const uneven: MatmulVariant = { kind: "shared", tile: 64, tm: 3, tn: 4, tk: 8 };
  assert.throws(() => matmulKernel("bad", { batch: 1, m: 4, n: 4, k: 4 }, io, uneven), /multiple of tm/);
});
