import type { Kernel } from "./kernel.ts";
import { type MatmulIO, type MatmulShape, type MatmulVariant, validateShape } from "./matmul_common.ts";
import { registerMatmul } from "./matmul_register.ts";
import { sharedMatmul } from "./matmul_shared.ts";
import { vectorBlocker, vectorMatmul } from "./matmul_vector.ts";

export type { MatmulIO, MatmulShape, MatmulVariant, MatmulVectorIO } from "./matmul_common.ts";
export { variantName } from "./matmul_common.ts";

/** CPU adapters (lavapipe, SwiftShader) run invocations as SIMD lanes; GPUs have fast shared memory. */
export type AdapterClass = "cpu" | "gpu";

/**
 * The matmul kernel for `shape`, reading and writing through `io`, in the given variant. A `vector`
 * variant whose operands cannot be read as vec4 (see vectorBlocker) is its scalar `register` twin.
 */
export function matmulKernel(name: string, shape: MatmulShape, io: MatmulIO, variant: MatmulVariant): Kernel {
  validateShape(shape);
  switch (variant.kind) {
    case "register":
      return registerMatmul(name, shape, io, variant);
    case "vector":
      return vectorBlocker(shape, io, variant)
        ? registerMatmul(name, shape, io, { ...variant, kind: "register" })
        : vectorMatmul(name, shape, io, variant);
    case "shared":
      return sharedMatmul(name, shape, io, variant);
  }
}

/** A good variant without measuring. */
export function defaultVariant(adapterClass: AdapterClass, shape: MatmulShape): MatmulVariant {
  return adapterClass === "cpu" ? cpuDefault(shape) : gpuDefault(shape);
}

/** The variants worth measuring on this class of adapter, the default first. */
export function candidateVariants(adapterClass: AdapterClass, shape: MatmulShape): MatmulVariant[] {
  const preferred = defaultVariant(adapterClass, shape);
  const others = (adapterClass === "cpu" ? CPU_CANDIDATES : GPU_CANDIDATES).filter((v) =>
    JSON.stringify(v) !== JSON.stringify(preferred)
  );
  return [preferred, ...others];
}

/**
 * On lavapipe every load is a loop over the SIMD lanes, so a k step costs about (tm + tn) loads
 * for tm * tn FMAs: more outputs per thread is better, up to about 128 accumulators; past that,
 * spills eat the gain. Measured at 512^3 and 1024^3 (MATMUL_BENCH_ALL=1 bench/matmul_bench.ts,
 * relative to 8x16): 16x8 1.0, 8x8 0.8, 16x16 0.7, 4x8 0.6, 4x4 0.4, shared tiles 0.15-0.2
 * (barriers are slow there). The `vector` kind reads four values per load where the operands allow
 * (else it is the register kernel of the same tiles): 1024^3 8x16 went from 13.5 to 15.2 GFLOP/s, and
 * with a quarter of the loads, taller blocks (16x16 wg 8x2: 16.9) pay off again.
 * The short, wide variants cover products with few rows (decoding, small batches).
 */
const CPU_TILES: readonly Omit<RegisterVariant, "kind">[] = [
  { tm: 8, tn: 16, wgX: 8, wgY: 8 },
  { tm: 16, tn: 8, wgX: 8, wgY: 8 },
  { tm: 8, tn: 16, wgX: 8, wgY: 1 },
  { tm: 8, tn: 16, wgX: 16, wgY: 4 },
  { tm: 8, tn: 8, wgX: 8, wgY: 8 },
  { tm: 4, tn: 16, wgX: 8, wgY: 1 },
  { tm: 2, tn: 16, wgX: 8, wgY: 1 },
  { tm: 1, tn: 16, wgX: 8, wgY: 1 },
  { tm: 4, tn: 4, wgX: 8, wgY: 8 },
];
const CPU_CANDIDATES: readonly VectorVariant[] = [
  ...CPU_TILES.map((t): VectorVariant => ({ kind: "vector", ...t })),
  { kind: "vector", tm: 16, tn: 16, wgX: 8, wgY: 2 },
  { kind: "vector", tm: 8, tn: 32, wgX: 8, wgY: 4 },
  // 10-25% faster than the defaults where columns come in whole blocks of 96 (1280x192 by 1152 32.8 ->
  // 30.0 ms, 1280x576 by 192 16.1 -> 12.9, 2912x128 by 384 16.8 -> 14.8, standalone), but not a
  // default: its 768 FMAs per step compile so long that a cold eval of the shipped checkpoint lost
  // 11 s to them (prefill's first dispatches 12.7 -> 24.7 s). `deno task tune` picks it where it wins.
  { kind: "vector", tm: 16, tn: 12, wgX: 8, wgY: 1 },
];

/** Standard shared-memory tilings; 256 threads or fewer, at most 8.3 KB of workgroup memory. */
const GPU_CANDIDATES: readonly MatmulVariant[] = [
  { kind: "shared", tile: 128, tm: 8, tn: 8, tk: 8 },
  { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 16 },
  { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 8 },
  { kind: "shared", tile: 64, tm: 8, tn: 8, tk: 8 },
  { kind: "shared", tile: 32, tm: 2, tn: 2, tk: 16 },
  { kind: "register", tm: 4, tn: 4, wgX: 16, wgY: 16 },
];

type RegisterVariant = Extract<MatmulVariant, { kind: "register" }>;
type VectorVariant = Extract<MatmulVariant, { kind: "vector" }>;

/** lavapipe runs one worker per core; only small products are sensitive to this guess. */
const CPU_WORKERS = 8;

/**
 * The CPU candidate with the least estimated time: workgroups are shared among the workers, each
 * costs its whole block (clamped rows and columns past the edge are computed too) times the loads
 * per FMA. Ties go to the earlier candidate: taller blocks reuse each column of B from cache.
 */
function cpuDefault({ batch, m, n, k }: MatmulShape): MatmulVariant {
  if (narrowProduct({ batch, m, n, k })) return NARROW;
  const cost = (v: VectorVariant) => {
    const [rows, cols] = [v.tm * v.wgY, v.tn * v.wgX];
    const blocks = batch * Math.ceil(m / rows) * Math.ceil(n / cols);
    return Math.ceil(blocks / CPU_WORKERS) * rows * cols * (v.tm + v.tn) / (v.tm * v.tn);
  };
  // The first nine are the register kernel's tiles, which the estimate was fitted to.
  return CPU_CANDIDATES.slice(0, CPU_TILES.length).reduce((best, v) => (cost(v) < cost(best) ? v : best));
}

const NARROW: VectorVariant = { kind: "vector", tm: 8, tn: 8, wgX: 8, wgY: 8 };

/**
 * Products with a short reduction or few outputs, where the estimate above (fitted at 512^3 and
 * 1024^3) misleads: measured in the demo spec's train step on lavapipe (bench/suites/demo.ts shapes,
 * plans alternating in one process, whole-plan GPU time per product), 8x8 tiles in 8x8 workgroups
 * beat the estimate's choice at K = 64..384 with 1312 rows (1312x64x64 10.7 -> 9.7 ms, x384 by 64
 * 20.7 -> 16.3, 1312x64 by 192 21.4 -> 17.9) and for the weight gradients, K = 1312 over 64..192
 * outputs a side (192x64 12.6 -> 6.8 ms, 64x192 17.4 -> 14.2), 11% of the step's matmul time in all.
 * At 512^3 they lose (0.8x of 8x16), so long reductions over many outputs keep the estimate. Rows or
 * columns under 64 (heads, patches) and columns not in whole vec4s keep it too.
 */
function narrowProduct({ m, n, k }: MatmulShape): boolean {
  if (m < 64 || n < 64 || n % 4 !== 0) return false;
  const outputs = m * n;
  return outputs <= 1 << 19 && (k <= 384 || outputs <= 1 << 16);
}

/** Enough workgroups to fill a large GPU (~100+ multiprocessors) at each size. */
function gpuDefault({ batch, m, n }: MatmulShape): MatmulVariant {
  const outputs = batch * m * n;
  if (outputs >= 2048 * 2048) return { kind: "shared", tile: 128, tm: 8, tn: 8, tk: 8 };
  if (outputs >= 512 * 512) return { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 16 };
  return { kind: "shared", tile: 32, tm: 2, tn: 2, tk: 16 };
}
