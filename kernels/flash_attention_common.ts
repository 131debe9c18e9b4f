import { grid, type KernelBinding } from "./kernel.ts";

/** q: [batch, heads, t, d]; k, v: [batch, heads, s, d]. */
export interface AttentionShape {
  readonly batch: number;
  readonly heads: number;
  readonly t: number;
  readonly s: number;
  readonly d: number;
}

/**
 * How the forward kernel reads q, k, v and the mask and writes o and lse, as WGSL builders (like
 * MatmulIO): arguments are u32 WGSL expressions, always in range (the kernel clamps before calling).
 */
export interface AttentionIO {
  /** Module-scope WGSL: bindings (see bindingDecl) and helper functions. */
  readonly declarations: string;
  readonly bindings: readonly KernelBinding[];
  readonly loadQ: (b: string, h: string, i: string, d: string) => string;
  readonly loadK: (b: string, h: string, j: string, d: string) => string;
  readonly loadV: (b: string, h: string, j: string, d: string) => string;
  /** WGSL bool: may query i attend key j in batch row b. */
  readonly allowed: (b: string, i: string, j: string) => string;
  /**
   * WGSL u32: 0 when no query in [i0, i1] may attend any key in [j0, j1] (inclusive) of batch row b,
   * 1 when every pair may, 2 when unknown. Absent: every tile is 2. The kernel skips class-0 tiles
   * and the per-element predicate in class-1 tiles, so a wrong 0 or 1 gives wrong results.
   */
  readonly tileClass?: (b: string, i0: string, i1: string, j0: string, j1: string) => string;
  readonly storeO: (b: string, h: string, i: string, d: string, value: string) => string;
  readonly storeLse: (b: string, h: string, i: string, value: string) => string;
}

export interface AttentionBackwardIO extends Omit<AttentionIO, "storeO" | "storeLse"> {
  readonly loadDO: (b: string, h: string, i: string, d: string) => string;
  readonly loadLse: (b: string, h: string, i: string) => string;
  /** delta_i = sum_d dO[i, d] * O[i, d], computed by the caller. */
  readonly loadDelta: (b: string, h: string, i: string) => string;
  readonly storeDQ: (b: string, h: string, i: string, d: string, value: string) => string;
  readonly storeDK: (b: string, h: string, j: string, d: string, value: string) => string;
  readonly storeDV: (b: string, h: string, j: string, d: string, value: string) => string;
}

/**
 * `rows` (CPU adapters, where invocations are SIMD lanes, barriers are costly and every load with a
 * varying address is a per-lane gather): each invocation owns `perThread` rows (query rows forward
 * and for dQ, key rows for dK/dV, interleaved across the workgroup) with their vectors in registers,
 * and loops over the other side one element at a time, so each load feeds `perThread` rows. Tiles
 * (blockQ x blockK) are classified per workgroup; no workgroup memory, no barriers.
 *
 * `tiled` (GPUs): a workgroup owns blockQ query rows (blockK key rows for dK/dV) with `lanes`
 * invocations per row; the other side's tile is staged transposed in workgroup memory, each
 * invocation computes blockK / lanes scores of its row and d / lanes output columns.
 */
export type AttentionVariant =
  | { readonly kind: "rows"; readonly blockQ: number; readonly blockK: number; readonly perThread: number }
  | { readonly kind: "tiled"; readonly blockQ: number; readonly blockK: number; readonly lanes: number };

/** The tiling every kernel of the variant uses: tiles are blockQ queries x blockK keys. */
export function variantBlocks(v: AttentionVariant): { blockQ: number; blockK: number } {
  return { blockQ: v.blockQ, blockK: v.blockK };
}

export function attentionVariantName(v: AttentionVariant): string {
  return v.kind === "rows"
    ? `rows ${v.blockQ}x${v.blockK} per thread ${v.perThread}`
    : `tiled ${v.blockQ}x${v.blockK} lanes ${v.lanes}`;
}

/** lse of a row with no allowed key (log 0); finite, since WGSL may assume there are no infinities. */
export const EMPTY_ROW_LSE = -1e30;

/** Score of a masked-out pair in registers and workgroup memory; also the running max's start. */
export const MASKED = "-1e30";

/** Prefix of every identifier the generators declare, so they cannot collide with `io.declarations`. */
export const P = "fa_";

/** Workgroup memory a tiled kernel may use: what every desktop GPU (and lavapipe) offers. */
export const WORKGROUP_BYTES = 32768;

export function validateAttention(shape: AttentionShape, v: AttentionVariant, what: string): void {
  for (const [key, value] of Object.entries(shape)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(
        `${what} shape ${JSON.stringify(shape)}: ${key} must be a positive integer, got ${value}`,
      );
    }
  }
  if (shape.batch * shape.heads > 65535) {
    throw new Error(
      `${what}: batch * heads = ${shape.batch * shape.heads} exceeds the 65535 workgroups allowed along z`,
    );
  }
  const blocks = [v.blockQ, v.blockK, v.kind === "tiled" ? v.lanes : v.perThread];
  if (blocks.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new Error(`${what} variant ${JSON.stringify(v)}: block sizes must be positive integers`);
  }
  const [unit, unitName] = v.kind === "tiled" ? [v.lanes, "lanes"] : [v.perThread, "perThread"];
  const dims: [string, number][] = [["blockQ", v.blockQ], ["blockK", v.blockK]];
  if (v.kind === "tiled") dims.push(["d", shape.d]);
  const bad = dims.filter(([, x]) => x % unit !== 0);
  if (bad.length > 0) {
    throw new Error(
      `${what} variant ${attentionVariantName(v)}: ${bad.map(([n, x]) => `${n} = ${x}`).join(", ")} ` +
        `must be a multiple of ${unitName} = ${unit}`,
    );
  }
}

export function checkWorkgroupMemory(floats: number, what: string, v: AttentionVariant, d: number): void {
  if (4 * floats > WORKGROUP_BYTES) {
    throw new Error(
      `${what} variant ${attentionVariantName(v)} at d = ${d} needs ${4 * floats} bytes of workgroup ` +
        `memory, over the ${WORKGROUP_BYTES} allowed: use smaller blocks`,
    );
  }
}

/**
 * Entry point: the workgroup owns block `${P}blk` of `owned` rows for head `${P}h` of batch row `${P}b`.
 * Blocks are spread over x and y; z is batch * heads.
 */
export function attentionEntry(
  shape: AttentionShape,
  rows: number,
  block: number,
  threads: number,
): { header: string; dispatch: [number, number, number] } {
  const blocks = Math.ceil(rows / block);
  const [x, y] = grid(blocks);
  const header = `@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) ${P}wid: vec3<u32>, @builtin(num_workgroups) ${P}nwg: vec3<u32>,
        @builtin(local_invocation_index) ${P}tid: u32) {
  let ${P}blk = ${P}wid.x + ${P}wid.y * ${P}nwg.x;
  // Surplus workgroups of a split grid; uniform per workgroup, so barriers below stay legal.
  if (${P}blk >= ${blocks}u) { return; }
  let ${P}b = ${P}wid.z / ${shape.heads}u;
  let ${P}h = ${P}wid.z % ${shape.heads}u;`;
  return { header, dispatch: [x, y, shape.batch * shape.heads] };
}

/**
 * Tile class of queries [i0, i0 + blockQ) x keys [j0, j0 + blockK), clipped to the shape, as a u32
 * WGSL expression; "2u" when the IO has no classifier.
 */
export function tileClassOf(
  io: Pick<AttentionIO, "tileClass">,
  shape: AttentionShape,
  blocks: { blockQ: number; blockK: number },
  i0: string,
  j0: string,
): string {
  if (!io.tileClass) return "2u";
  const i1 = `min(${i0} + ${blocks.blockQ - 1}u, ${shape.t - 1}u)`;
  const j1 = `min(${j0} + ${blocks.blockK - 1}u, ${shape.s - 1}u)`;
  return io.tileClass(`${P}b`, i0, i1, j0, j1);
}

/**
 * WGSL bool: may the pair (i, j) attend, both already clamped into range. `always` is a WGSL bool
 * that skips the predicate (a class-1 tile); `inRange` (may be "") rejects the padding of an edge block.
 */
export function maskTerm(
  io: Pick<AttentionIO, "allowed">,
  i: string,
  j: string,
  always: string,
  inRange: string,
): string {
  const pred = `(${always} || ${io.allowed(`${P}b`, i, j)})`;
  return inRange ? `(${inRange} && ${pred})` : pred;
}

/** Indents each line of WGSL `lines` by `depth` two-space steps. */
export function indent(lines: readonly string[], depth: number): string {
  const pad = "  ".repeat(depth);
  return lines.map((l) => pad + l).join("\n");
}

export function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

export function cost(
  shape: AttentionShape,
  passes: number,
  tensors: number,
): { flops: number; bytes: number } {
  const { batch, heads, t, s, d } = shape;
  return {
    flops: passes * 2 * batch * heads * t * s * d,
    bytes: 4 * tensors * batch * heads * Math.max(t, s) * d,
  };
}
