import assert from "node:assert/strict";
import {
  type AdapterClass,
  candidateVariants,
  defaultVariant,
  matmulKernel,
  type MatmulShape,
  type MatmulVariant,
  variantName,
} from "../kernels/matmul.ts";
import { cachedVariant, defaultCachePath, tuneMatmul } from "../kernels/autotune.ts";
import { openDevice } from "../runtime/device.ts";
import { checkedIO, checkVariant, type Layout, layoutName, LAYOUTS } from "./fixtures/matmul_fixtures.ts";

// Shapes that are not multiples of any tile, a batch, one that is, and one whose columns are whole
// blocks of 96 over rows that are not (the cpu default's wide tiles, clamped at the bottom edge).
const SHAPES: readonly MatmulShape[] = [
  { batch: 1, m: 1, n: 1, k: 1 },
  { batch: 1, m: 7, n: 13, k: 5 },
  { batch: 1, m: 33, n: 65, k: 17 },
  { batch: 3, m: 17, n: 9, k: 31 },
  { batch: 1, m: 128, n: 128, k: 128 },
  { batch: 2, m: 70, n: 192, k: 36 },
];

for (const adapterClass of ["cpu", "gpu"] as const satisfies readonly AdapterClass[]) {
  Deno.test(`every ${adapterClass} matmul variant matches the interpreter`, async (t) => {
    const layoutsSeen: Record<string, Set<Layout>> = {};
    for (const [s, shape] of SHAPES.entries()) {
      const variants = candidateVariants(adapterClass, shape);
      for (const [v, variant] of variants.entries()) {
        // Layouts rotate with the shape (compiling every pairing is slow on a CPU adapter).
        const name = variantName(variant);
        const layout = LAYOUTS[(s + stableOffset(name)) % LAYOUTS.length]!;
        (layoutsSeen[name] ??= new Set()).add(layout);
        await t.step(
          `${name}, ${shape.batch}x${shape.m}x${shape.n}x${shape.k}, ${layoutName(layout)}`,
          async () => {
            await checkVariant(variant, shape, layout, 100 * s + v);
          },
        );
      }
    }
    for (const [name, seen] of Object.entries(layoutsSeen)) {
      assert.equal(seen.size, LAYOUTS.length, `${name} was not run with every operand layout`);
    }
  });
}

function stableOffset(name: string): number {
  return [...name].reduce((acc, ch) => acc + ch.charCodeAt(0), 0);
}

Deno.test("the default variant comes first among the candidates and has a sane workgroup", () => {
  for (const adapterClass of ["cpu", "gpu"] as const) {
    for (const shape of [...SHAPES, { batch: 1, m: 4096, n: 4096, k: 4096 }]) {
      const chosen = defaultVariant(adapterClass, shape);
      assert.deepEqual(
        candidateVariants(adapterClass, shape)[0],
        chosen,
        `${adapterClass} ${JSON.stringify(shape)}`,
      );
      const kernel = matmulKernel("matmul_default", shape, checkedIO(shape, LAYOUTS[0]!), chosen);
      // At least one SIMD vector of a CPU (8 lanes) or two warps of a GPU, at most WebGPU's default limit.
      const threads = kernel.workgroupSize.reduce((x, y) => x * y);
      const least = adapterClass === "cpu" ? 8 : 64;
      assert.ok(
        threads >= least && threads <= 256,
        `${variantName(chosen)}: ${threads} threads per workgroup`,
      );
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

// ---- Autotuning: choice by measurement, cached on disk ----

/** Runs `f` with console.warn captured; returns what was warned. */
async function warnings(f: () => unknown): Promise<string[]> {
  const seen: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => seen.push(args.join(" "));
  try {
    await f();
  } finally {
    console.warn = original;
  }
  return seen;
}

const TUNE_SHAPE: MatmulShape = { batch: 2, m: 40, n: 24, k: 36 };

Deno.test("tuneMatmul caches the fastest candidate per adapter and shape", async () => {
  const dir = await Deno.makeTempDir();
  const cachePath = `${dir}/nested/tuning.json`;
  const { device } = await openDevice();
  const candidates = candidateVariants("cpu", TUNE_SHAPE).slice(0, 3);
  assert.equal(cachedVariant("adapter-a", TUNE_SHAPE, cachePath), undefined);

  const measured: { variant: MatmulVariant; gflops: number }[] = [];
  const onMeasured = (variant: MatmulVariant, gflops: number) => measured.push({ variant, gflops });
  const chosen = await tuneMatmul(device, "adapter-a", TUNE_SHAPE, undefined, candidates, {
    cachePath,
    onMeasured,
  });
  assert.deepEqual(measured.map((x) => x.variant), candidates);
  assert.ok(measured.every((x) => x.gflops > 0 && Number.isFinite(x.gflops)));
  assert.deepEqual(chosen, measured.reduce((a, b) => (b.gflops > a.gflops ? b : a)).variant);

  assert.deepEqual(cachedVariant("adapter-a", TUNE_SHAPE, cachePath), chosen);
  assert.equal(cachedVariant("adapter-b", TUNE_SHAPE, cachePath), undefined);
  assert.equal(cachedVariant("adapter-a", { ...TUNE_SHAPE, k: 35 }, cachePath), undefined);

  const again = await tuneMatmul(device, "adapter-a", TUNE_SHAPE, undefined, candidates, {
    cachePath,
    onMeasured: () => assert.fail("a cached choice was measured again"),
  });
  assert.deepEqual(again, chosen);

  // A second adapter's entry sits beside the first; the write leaves no temp file behind.
  const other = candidates[1]!;
  await tuneMatmul(device, "adapter-b", TUNE_SHAPE, undefined, [other], { cachePath });
  assert.deepEqual(cachedVariant("adapter-b", TUNE_SHAPE, cachePath), other);
  assert.deepEqual(cachedVariant("adapter-a", TUNE_SHAPE, cachePath), chosen);
  assert.deepEqual([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["tuning.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupt tuning cache is ignored with a warning and replaced", async () => {
  const dir = await Deno.makeTempDir();
  const cachePath = `${dir}/tuning.json`;
  const corrupt = [
    "{ not json",
    JSON.stringify({
      version: 1,
      matmul: { gpu: { b1_m1_n1_k1: { variant: { kind: "huge" }, gflops: 1 } } },
    }),
    JSON.stringify({ version: 2, matmul: {} }),
  ];
  for (const text of corrupt) {
    Deno.writeTextFileSync(cachePath, text);
    let read: MatmulVariant | undefined = defaultVariant("cpu", TUNE_SHAPE);
    const warned = await warnings(() =>
      read = cachedVariant("gpu", { batch: 1, m: 1, n: 1, k: 1 }, cachePath)
    );
    assert.equal(read, undefined, text);
    assert.equal(warned.length, 1, text);
    assert.match(warned[0]!, /tuning\.json/);
  }
  const { device } = await openDevice();
  const only = defaultVariant("cpu", TUNE_SHAPE);
  await warnings(() => tuneMatmul(device, "adapter", TUNE_SHAPE, undefined, [only], { cachePath }));
  assert.deepEqual(cachedVariant("adapter", TUNE_SHAPE, cachePath), only);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["tuning.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unwritable tuning cache warns but still returns the measured choice", async () => {
  const dir = await Deno.makeTempDir();
  Deno.writeTextFileSync(`${dir}/not_a_folder`, "");
  const cachePath = `${dir}/not_a_folder/tuning.json`;
  const { device } = await openDevice();
  const only = defaultVariant("gpu", TUNE_SHAPE);
  let chosen: MatmulVariant | undefined;
  const warned = await warnings(async () => {
    chosen = await tuneMatmul(device, "adapter", TUNE_SHAPE, undefined, [only], { cachePath });
  });
  assert.deepEqual(chosen, only);
  assert.ok(warned.some((w) => /cannot be written/.test(w)), warned.join("\n"));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["not_a_folder"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the default cache path follows XDG_CACHE_HOME, else HOME", () => {
  const saved = { xdg: Deno.env.get("XDG_CACHE_HOME"), home: Deno.env.get("HOME") };
  try {
    Deno.env.set("XDG_CACHE_HOME", "/tmp/xdg-cache-test");
    assert.equal(defaultCachePath(), "/tmp/xdg-cache-test/transfusion-wgsl/tuning.json");
    Deno.env.delete("XDG_CACHE_HOME");
    Deno.env.set("HOME", "/home/someone");
    assert.equal(defaultCachePath(), "/home/someone/.cache/transfusion-wgsl/tuning.json");
  } finally {
    for (const [key, value] of [["XDG_CACHE_HOME", saved.xdg], ["HOME", saved.home]] as const) {
      if (value === undefined) Deno.env.delete(key);
      else Deno.env.set(key, value);
    }
  }
});
