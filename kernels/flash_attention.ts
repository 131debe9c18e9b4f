/**
 * Flash attention with a mask given as a rule (`io.allowed`, optionally `io.tileClass`), forward and
 * FlashAttention-2-style backward; no [t, s] matrix is ever stored.
 *
 *   forward      o_i = sum_j p_ij v_j, p = softmax_j over allowed j of scale * q_i . k_j,
 *                lse_i = log sum_allowed exp(scale * q_i . k_j)       (EMPTY_ROW_LSE, o = 0 if none)
 *   backward Q   dQ_i = scale sum_j dS_ij k_j,  dS_ij = p_ij (dO_i . v_j - delta_i)
 *   backward KV  dK_j = scale sum_i dS_ij q_i,  dV_j = sum_i p_ij dO_i     (no atomics)
 *
 * with p_ij recomputed as exp(scale * q_i . k_j - lse_i) and delta_i = dO_i . O_i given by the caller.
 */
import {
  type AttentionBackwardIO,
  type AttentionIO,
  type AttentionShape,
  type AttentionVariant,
  attentionVariantName,
  cost,
  validateAttention,
  WORKGROUP_BYTES,
} from "./flash_attention_common.ts";
import { rowsBackwardKV, rowsBackwardQ, rowsForward } from "./flash_attention_rows.ts";
import { tiledForward, tiledMemory } from "./flash_attention_tiled.ts";
import { tiledBackwardKV, tiledBackwardQ } from "./flash_attention_tiled_backward.ts";
import type { Kernel } from "./kernel.ts";
import type { AdapterClass } from "./matmul.ts";
import { libraryFor } from "./wgsl.ts";

export type {
  AttentionBackwardIO,
  AttentionIO,
  AttentionShape,
  AttentionVariant,
} from "./flash_attention_common.ts";
export { attentionVariantName, EMPTY_ROW_LSE, variantBlocks } from "./flash_attention_common.ts";

interface Generated {
  readonly wgsl: string;
  readonly workgroupSize: readonly [number, number, number];
  readonly dispatch: readonly [number, number, number];
}

function kernel(
  name: string,
  doc: string,
  op: string,
  io: { declarations: string; bindings: AttentionIO["bindings"] },
  g: Generated,
  c: { flops: number; bytes: number },
): Kernel {
  return {
    name,
    doc,
    ops: [op],
    wgsl: [io.declarations, libraryFor(g.wgsl), g.wgsl].filter(Boolean).join("\n\n"),
    workgroupSize: g.workgroupSize,
    dispatch: g.dispatch,
    bindings: io.bindings,
    ...c,
  };
}

const describe = (shape: AttentionShape, v: AttentionVariant) =>
  `[${shape.batch}, ${shape.heads}, ${shape.t}, ${shape.d}] x [${shape.s}], ${attentionVariantName(v)}`;

/** o [b, h, t, d] and lse [b, h, t]; `scale` multiplies q . k (default 1 / sqrt(d)). */
export function flashAttentionForward(
  name: string,
  shape: AttentionShape,
  io: AttentionIO,
  variant: AttentionVariant,
  scale = 1 / Math.sqrt(shape.d),
): Kernel {
  validateAttention(shape, variant, "flash attention forward");
  const g = variant.kind === "rows"
    ? rowsForward(shape, io, variant, scale)
    : tiledForward(shape, io, variant, scale);
  const doc = `flash attention forward ${describe(shape, variant)}`;
  return kernel(name, doc, "flash_attention", io, g, cost(shape, 2, 4));
}

/** dQ [b, h, t, d] from dO, lse and delta; one workgroup per query block. */
export function flashAttentionBackwardQ(
  name: string,
  shape: AttentionShape,
  io: AttentionBackwardIO,
  variant: AttentionVariant,
  scale = 1 / Math.sqrt(shape.d),
): Kernel {
  validateAttention(shape, variant, "flash attention dQ");
  const g = variant.kind === "rows"
    ? rowsBackwardQ(shape, io, variant, scale)
    : tiledBackwardQ(shape, io, variant, scale);
  const doc = `flash attention backward dQ ${describe(shape, variant)}`;
  return kernel(name, doc, "flash_attention_backward", io, g, cost(shape, 3, 5));
}

/** dK and dV [b, h, s, d]; one workgroup per key block. */
export function flashAttentionBackwardKV(
  name: string,
  shape: AttentionShape,
  io: AttentionBackwardIO,
  variant: AttentionVariant,
  scale = 1 / Math.sqrt(shape.d),
): Kernel {
  validateAttention(shape, variant, "flash attention dK/dV");
  const g = variant.kind === "rows"
    ? rowsBackwardKV(shape, io, variant, scale)
    : tiledBackwardKV(shape, io, variant, scale);
  const doc = `flash attention backward dK, dV ${describe(shape, variant)}`;
  return kernel(name, doc, "flash_attention_backward", io, g, cost(shape, 4, 6));
}

/** A good variant without measuring: the first of `attentionVariants`. */
export function defaultAttentionVariant(adapterClass: AdapterClass, shape: AttentionShape): AttentionVariant {
  // One row per invocation fits every head size: the last resort when no tiled variant does.
  return attentionVariants(adapterClass, shape)[0] ?? { kind: "rows", blockQ: 32, blockK: 32, perThread: 1 };
}

/** The variants worth measuring on this class of adapter that fit `shape`, the preferred one first. */
export function attentionVariants(adapterClass: AdapterClass, shape: AttentionShape): AttentionVariant[] {
  const all = adapterClass === "cpu" ? cpuCandidates(shape) : GPU_CANDIDATES;
  const seen = new Set<string>();
  return all.filter((v) => {
    const key = JSON.stringify(v);
    if (seen.has(key) || !fits(v, shape)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Measured on lavapipe (1024 x 1024, d 64, 4 heads, causal; CPU ms per kernel, fwd / dQ / dK,dV):
 * every load with a varying address is a per-lane gather, so rows per invocation pay off (perThread
 * 1: 205 / 215 / 295, 2: 170 / 155 / 195, 4: 100 / 110 / 110, 8: 60 / 57 / 70; tiled 16x16:
 * 300 / 430 / 590), but LLVM's compile time grows faster than perThread * d (under load, per kernel:
 * 8-23 s at 2 x 64, 20-94 s at 4 x 64, minutes at 8 x 64), so the default keeps perThread * d at 128.
 */
function cpuCandidates({ t, s, d }: AttentionShape): AttentionVariant[] {
  const r = Math.max(1, Math.min(4, Math.floor(128 / d)));
  return [
    ...shortRows(Math.max(t, s), d),
    { kind: "rows", blockQ: 16 * r, blockK: 16 * r, perThread: r },
    { kind: "rows", blockQ: 16, blockK: 16, perThread: 1 },
    { kind: "rows", blockQ: 32 * r, blockK: 32 * r, perThread: 2 * r },
    { kind: "tiled", blockQ: 16, blockK: 16, lanes: 1 },
  ];
}

/**
 * lavapipe runs a workgroup's invocations in SIMD groups of 8 lanes (256-bit registers), so a block
 * of 16 invocations x 4 rows costs two groups whatever part of its 64 rows exist. Rows no longer
 * than 8 x (128 / d) fit one group of 8 invocations that owns them all with the fewest rows each:
 * the demo's 41 positions at head dim 16 take 6 rows per invocation (48 slots, 85% used, against 64
 * slots at 64% in two groups), and every key or query loaded feeds 6 rows instead of 4.
 */
function shortRows(rows: number, d: number): AttentionVariant[] {
  const lanes = 8;
  const most = Math.max(1, Math.floor(128 / d));
  const perThread = Math.ceil(rows / lanes);
  if (perThread > most) return [];
  return [{ kind: "rows", blockQ: lanes * perThread, blockK: lanes * perThread, perThread }];
}

// Largest tiles first; the memory check keeps the ones that fit the head size.
const GPU_CANDIDATES: readonly AttentionVariant[] = [
  { kind: "tiled", blockQ: 32, blockK: 32, lanes: 4 },
  { kind: "tiled", blockQ: 32, blockK: 16, lanes: 4 },
  { kind: "tiled", blockQ: 16, blockK: 16, lanes: 8 },
  { kind: "tiled", blockQ: 16, blockK: 8, lanes: 8 },
  { kind: "tiled", blockQ: 8, blockK: 8, lanes: 4 },
  { kind: "tiled", blockQ: 8, blockK: 8, lanes: 2 },
  { kind: "tiled", blockQ: 8, blockK: 8, lanes: 1 },
];

function fits(v: AttentionVariant, shape: AttentionShape): boolean {
  if (v.kind === "rows") return v.blockQ % v.perThread === 0 && v.blockK % v.perThread === 0;
  if (shape.d % v.lanes !== 0) return false;
  const memory = tiledMemory(v, shape.d);
  return Math.max(memory.forward, memory.backwardQ, memory.backwardKV) * 4 <= WORKGROUP_BYTES;
}
