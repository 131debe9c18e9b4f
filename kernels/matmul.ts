import type { Kernel } from "./kernel.ts";
import { type MatmulIO, type MatmulShape, type MatmulVariant, validateShape } from "./matmul_common.ts";
import { registerMatmul } from "./matmul_register.ts";
import { sharedMatmul } from "./matmul_shared.ts";

export type { MatmulIO, MatmulShape, MatmulVariant } from "./matmul_common.ts";
export { variantName } from "./matmul_common.ts";

/** CPU adapters (lavapipe, SwiftShader) run invocations as SIMD lanes; GPUs have fast shared memory. */
export type AdapterClass = "cpu" | "gpu";

/** The matmul kernel for `shape`, reading and writing through `io`, in the given variant. */
export function matmulKernel(name: string, shape: MatmulShape, io: MatmulIO, variant: MatmulVariant): Kernel {
  validateShape(shape);
  return variant.kind === "register"
    ? registerMatmul(name, shape, io, variant)
    : sharedMatmul(name, shape, io, variant);
}

/** A good variant without measuring. */
export function defaultVariant(adapterClass: AdapterClass, shape: MatmulShape): MatmulVariant {
  return adapterClass === "cpu" ? cpuDefault(shape) : gpuDefault(shape);
}

/** The variants worth measuring on this class of adapter; the default is always among them. */
export function candidateVariants(adapterClass: AdapterClass, shape: MatmulShape): MatmulVariant[] {
  const all = adapterClass === "cpu" ? CPU_CANDIDATES : GPU_CANDIDATES;
  const fitting = all.filter((v) => !wasteful(v, shape));
  const preferred = defaultVariant(adapterClass, shape);
  const same = (v: MatmulVariant) => JSON.stringify(v) === JSON.stringify(preferred);
  return [preferred, ...fitting.filter((v) => !same(v))];
}

// Measured on lavapipe (2 cores, 8-wide SIMD): see bench/matmul_bench.ts.
const CPU_CANDIDATES: readonly MatmulVariant[] = [
  { kind: "register", tm: 8, tn: 16, wgX: 8, wgY: 8 },
  { kind: "register", tm: 8, tn: 16, wgX: 16, wgY: 4 },
  { kind: "register", tm: 8, tn: 8, wgX: 8, wgY: 8 },
  { kind: "register", tm: 4, tn: 8, wgX: 16, wgY: 4 },
  { kind: "register", tm: 4, tn: 4, wgX: 16, wgY: 16 },
  { kind: "register", tm: 4, tn: 16, wgX: 64, wgY: 1 },
  { kind: "shared", tile: 32, tm: 4, tn: 4, tk: 8 },
];

const GPU_CANDIDATES: readonly MatmulVariant[] = [
  { kind: "shared", tile: 128, tm: 8, tn: 8, tk: 8 },
  { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 16 },
  { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 8 },
  { kind: "shared", tile: 64, tm: 8, tn: 8, tk: 8 },
  { kind: "shared", tile: 32, tm: 2, tn: 2, tk: 16 },
  { kind: "register", tm: 4, tn: 4, wgX: 16, wgY: 16 },
];

function cpuDefault(_shape: MatmulShape): MatmulVariant {
  return { kind: "register", tm: 8, tn: 16, wgX: 8, wgY: 8 };
}

function gpuDefault(shape: MatmulShape): MatmulVariant {
  // Small products cannot fill an H100 with 128-wide tiles; 64 keeps more workgroups in flight.
  const big = shape.batch * shape.m * shape.n >= 2048 * 2048;
  return big
    ? { kind: "shared", tile: 128, tm: 8, tn: 8, tk: 8 }
    : { kind: "shared", tile: 64, tm: 4, tn: 4, tk: 16 };
}

/** A block of C that is more than four times the whole output wastes most of its threads. */
function wasteful(v: MatmulVariant, shape: MatmulShape): boolean {
  const [rows, cols] = v.kind === "register" ? [v.tm * v.wgY, v.tn * v.wgX] : [v.tile, v.tile];
  return rows * cols > 4 * Math.max(shape.m * shape.n, 64 * 64);
}
