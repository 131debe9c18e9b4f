import { grid, type Kernel, type KernelBinding } from "./kernel.ts";

/** C[b] = A[b] @ B[b] with A: [batch, m, k], B: [batch, k, n], C: [batch, m, n]. */
export interface MatmulShape {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

/**
 * How the kernel reads its operands and writes its result. Loads and stores are WGSL expression
 * builders, so an operand can be any view (transposed, broadcast, sliced) read in place.
 */
export interface MatmulIO {
  /** WGSL module-scope declarations: bindings (use bindingDecl from kernels/kernel.ts) and helper fns. */
  readonly declarations: string;
  /** f32 WGSL expression for A[b, i, kk]; arguments are u32 WGSL expressions. Caller guarantees validity
   *  only for i < m, kk < k: the kernel must not call it out of range (clamp or guard). */
  readonly loadA: (b: string, i: string, kk: string) => string;
  readonly loadB: (b: string, kk: string, j: string) => string;
  /** A WGSL statement storing f32 `value` at C[b, i, j] (i < m, j < n guaranteed by the kernel). */
  readonly store: (b: string, i: string, j: string, value: string) => string;
  /**
   * A WGSL statement storing four f32 values at C[b, i, j .. j+3] in one 16-byte write, where the
   * result's layout allows it. The kernel calls it only with j a multiple of 4 and n a multiple of 4.
   */
  readonly store4?: (
    b: string,
    i: string,
    j: string,
    values: readonly [string, string, string, string],
  ) => string;
  readonly bindings: readonly KernelBinding[];
  /** Four consecutive operand values in one load, where both operands' layouts allow it. */
  readonly vector?: MatmulVectorIO;
  /**
   * IR ops one `store` computes (a fused epilogue's chain; absent: a plain store). The register
   * kernels unroll their stores, so a costly one is compiled tm * tn times over (see `tileStores`).
   */
  readonly storeOps?: number;
}

/**
 * Vector loads for the `vector` variant: each returns a `vec4<f32>` WGSL expression of four operand
 * values that are consecutive in memory (so one 16-byte load reads them). The kernel calls them only
 * with the vectorized index a multiple of 4 and all four values in range:
 *   a "k": loadA4(b, i, kk) = A[b, i, kk .. kk+3]     a "m": loadA4(b, i, kk) = A[b, i .. i+3, kk]
 *   b "n": loadB4(b, kk, j) = B[b, kk, j .. j+3]      b "k": loadB4(b, kk, j) = B[b, kk .. kk+3, j]
 * A row-major operand is "k" / "n"; one read transposed in place (a weight gradient's X^T, a
 * backward product's W^T) is "m" / "k".
 */
export interface MatmulVectorIO {
  readonly a: "k" | "m";
  readonly b: "n" | "k";
  readonly loadA4: (b: string, i: string, kk: string) => string;
  readonly loadB4: (b: string, kk: string, j: string) => string;
}

/**
 * `register`: no barriers; each thread computes tm x tn outputs straight from global memory. Threads
 * of a workgroup own interleaved rows and columns (row = base + r * wgY, column = base + c * wgX), so
 * neighbouring invocations read neighbouring columns of B. Best on CPU adapters (lavapipe), where
 * invocations are SIMD lanes and barriers are expensive.
 *
 * `vector`: the register kernel reading operands four values per load (MatmulVectorIO) where the IO
 * offers it and the vectorized dims are multiples of 4, else exactly the `register` kernel of the same
 * tiles. On lavapipe a load is a loop over the SIMD lanes whatever its width, so a vec4 load costs
 * about what a scalar one does: a quarter of the load loops per FMA.
 *
 * `shared`: a tile x tile block of C per workgroup, tk-deep slices of A and B staged in workgroup
 * memory, (tile / tn) x (tile / tm) threads each computing tm x tn interleaved outputs. Best on GPUs.
 */
export type MatmulVariant =
  | {
    readonly kind: "register";
    readonly tm: number;
    readonly tn: number;
    readonly wgX: number;
    readonly wgY: number;
  }
  | {
    readonly kind: "vector";
    readonly tm: number;
    readonly tn: number;
    readonly wgX: number;
    readonly wgY: number;
  }
  | {
    readonly kind: "shared";
    readonly tile: number;
    readonly tm: number;
    readonly tn: number;
    readonly tk: number;
  };

/** Prefix of every identifier the generators declare, so they cannot collide with `io.declarations`. */
export const P = "mm_";

export function u32(x: number): string {
  return `${x}u`;
}

/** [0, 1, ..., count - 1]: the generators unroll over these. */
export function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

/**
 * Op copies (`storeOps` x tm x tn) above which `tileStores` writes one store site in a loop. Why:
 * lavapipe inlines every function and JIT-compiles a pipeline at its first dispatch; the KV-cache
 * attention scores (an 8x16 tile with a ~70-op mask epilogue) took 60-100 s each to compile
 * unrolled, and a store runs once per output, so the loop costs nothing measurable.
 */
export const STORE_LOOP_OPS = 512;

/**
 * The stores of a register tile: C[row_base + rowOffsets[r], col_base + colOffsets[c]] = acc(r, c)
 * where in range. Unrolled (runs of four columns in one `store4` where the IO has it and the base is
 * aligned), or with a costly store (`STORE_LOOP_OPS`) the accumulators copied into a
 * local array and one store site in a loop over it.
 */
export function tileStores(
  io: Pick<MatmulIO, "store" | "store4" | "storeOps">,
  shape: Pick<MatmulShape, "m" | "n">,
  rowOffsets: readonly number[],
  colOffsets: readonly number[],
  acc: (r: number, c: number) => string,
  /** The thread's column base is a multiple of 4 (then runs of four columns may be stored at once). */
  alignedBase = false,
): string {
  const { m, n } = shape;
  const b = `${P}batch`;
  const tiles = rowOffsets.length * colOffsets.length;
  if ((io.storeOps ?? 0) * tiles <= STORE_LOOP_OPS) {
    const groups = alignedBase && io.store4 && n % 4 === 0 ? columnGroups(colOffsets) : undefined;
    if (groups) {
      return rowOffsets.flatMap((ro, r) =>
        groups.map((first) => {
          const [i, j] = [`(${P}row_base + ${u32(ro)})`, `(${P}col_base + ${u32(colOffsets[first]!)})`];
          const values = range(4).map((t) => acc(r, first + t)) as [string, string, string, string];
          return `  if (${i} < ${u32(m)} && ${j} < ${u32(n)}) { ${io.store4!(b, i, j, values)} }`;
        })
      ).join("\n");
    }
    return rowOffsets.flatMap((ro, r) =>
      colOffsets.map((co, c) => {
        const [i, j] = [`(${P}row_base + ${u32(ro)})`, `(${P}col_base + ${u32(co)})`];
        return `  if (${i} < ${u32(m)} && ${j} < ${u32(n)}) { ${io.store(b, i, j, acc(r, c))} }`;
      })
    ).join("\n");
  }
  const tn = colOffsets.length;
  const list = (xs: readonly number[]) => xs.map(u32).join(", ");
  const values = rowOffsets.flatMap((_, r) => colOffsets.map((_, c) => acc(r, c))).join(", ");
  return `  var ${P}out = array<f32, ${tiles}>(${values});
  var ${P}row_off = array<u32, ${rowOffsets.length}>(${list(rowOffsets)});
  var ${P}col_off = array<u32, ${tn}>(${list(colOffsets)});
  for (var ${P}e = 0u; ${P}e < ${u32(tiles)}; ${P}e++) {
    let ${P}i = ${P}row_base + ${P}row_off[${P}e / ${u32(tn)}];
    let ${P}j = ${P}col_base + ${P}col_off[${P}e % ${u32(tn)}];
    if (${P}i < ${u32(m)} && ${P}j < ${u32(n)}) { ${io.store(b, `${P}i`, `${P}j`, `${P}out[${P}e]`)} }
  }`;
}

/**
 * The first column of each group of four, when the tile's columns come as runs of four adjacent ones
 * starting at a multiple of 4 from the thread's base (the vector kernel's layout); else undefined. Then `store4` writes a run at once: one bounds check and one
 * 16-byte store instead of four of each (lavapipe runs every store as a loop over the SIMD lanes, and
 * compiles each unrolled store site at the first dispatch).
 */
function columnGroups(colOffsets: readonly number[]): number[] | undefined {
  if (colOffsets.length % 4) return undefined;
  const firsts = range(colOffsets.length / 4).map((g) => 4 * g);
  const runs = firsts.every((f) =>
    colOffsets[f]! % 4 === 0 && range(4).every((t) => colOffsets[f + t] === colOffsets[f]! + t)
  );
  return runs ? firsts : undefined;
}

/** Workgroups cover `rows x cols` blocks of C, numbered row-major, spread over x/y; batch is z. */
export interface TileGrid {
  readonly tilesX: number;
  readonly tiles: number;
  readonly dispatch: readonly [number, number, number];
}

export function tileGrid(shape: MatmulShape, rows: number, cols: number): TileGrid {
  if (shape.batch > 65535) {
    throw new Error(`matmul batch ${shape.batch} exceeds the 65535 workgroups allowed along z`);
  }
  const tilesX = Math.ceil(shape.n / cols);
  const tiles = tilesX * Math.ceil(shape.m / rows);
  const [x, y] = grid(tiles);
  return { tilesX, tiles, dispatch: [x, y, shape.batch] };
}

/** Entry point header: the block of C this workgroup owns is (`${P}tile_row`, `${P}tile_col`). */
export function entryHeader(wg: readonly [number, number], g: TileGrid): string {
  return `@compute @workgroup_size(${wg[0]}, ${wg[1]}, 1)
fn main(@builtin(workgroup_id) ${P}wid: vec3<u32>, @builtin(num_workgroups) ${P}nwg: vec3<u32>,
        @builtin(local_invocation_id) ${P}lid: vec3<u32>) {
  let ${P}tile = ${P}wid.x + ${P}wid.y * ${P}nwg.x;
  // Surplus workgroups of a split grid; uniform per workgroup, so barriers below stay legal.
  if (${P}tile >= ${u32(g.tiles)}) { return; }
  let ${P}batch = ${P}wid.z;
  let ${P}tile_row = ${P}tile / ${u32(g.tilesX)};
  let ${P}tile_col = ${P}tile % ${u32(g.tilesX)};`;
}

export function validateShape(shape: MatmulShape): void {
  for (const [key, value] of Object.entries(shape)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(
        `matmul shape ${JSON.stringify(shape)}: ${key} must be a positive integer, got ${value}`,
      );
    }
  }
}

/** The Kernel every matmul generator returns; `how` ends its doc (variant and method). */
export function matmulResult(
  name: string,
  shape: MatmulShape,
  io: MatmulIO,
  g: TileGrid,
  workgroupSize: readonly [number, number, number],
  wgsl: string,
  how: string,
): Kernel {
  return {
    name,
    doc: `matmul [${shape.batch}, ${shape.m}, ${shape.k}] x [${shape.k}, ${shape.n}], ${how}`,
    ops: ["matmul"],
    wgsl,
    workgroupSize,
    dispatch: g.dispatch,
    bindings: io.bindings,
    ...costOf(shape),
  };
}

export function costOf(shape: MatmulShape): { flops: number; bytes: number } {
  const { batch, m, n, k } = shape;
  return { flops: 2 * batch * m * n * k, bytes: 4 * batch * (m * k + k * n + m * n) };
}

export function variantName(v: MatmulVariant): string {
  return v.kind !== "shared"
    ? `${v.kind} ${v.tm}x${v.tn} wg ${v.wgX}x${v.wgY}`
    : `shared tile ${v.tile} ${v.tm}x${v.tn} tk ${v.tk}`;
}
