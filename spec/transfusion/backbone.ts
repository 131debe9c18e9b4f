/**
 * The shared transformer: pre-norm blocks (norm -> masked attention with RoPE, norm -> MLP) and a
 * final norm, over the whole mixed sequence. The mask is the Transfusion rule, evaluated inside the
 * flash-attention kernels from the layout: causal, bidirectional within an image, never across
 * documents.
 */
import type { AttentionOptions } from "../nn/attention.ts";
import { attention, gelu, layernorm, linear, rmsnorm, rope1d, rope2d, swiglu } from "../nn/mod.ts";
import { causal, sameDocument, sameSpan } from "../mask.ts";
import { type Layout, MODALITY } from "../layout.ts";
import { where } from "../functions.ts";
import { module, type ModuleDecl } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import type { BackboneConfig, ImageConfig } from "./config.ts";

type T3 = Tensor<"f32", 3>;

/** The attention rule of every layer. */
export const transfusionMask = () => sameDocument().and(causal().or(sameSpan("image")));

function norm(b: BackboneConfig) {
  return b.norm === "rmsnorm" ? rmsnorm(b.dim, b.normEps) : layernorm(b.dim, b.normEps);
}

/** x [..., D] -> [..., D]: SwiGLU (no biases), or linear -> GELU -> linear (with biases). */
function mlp(b: BackboneConfig) {
  const std = b.initStd;
  if (b.mlp === "swiglu") return swiglu(b.dim, b.hidden, { std });
  return module(
    { fc: linear(b.dim, b.hidden, { std }), proj: linear(b.hidden, b.dim, { std }) },
    (p) => <R extends number>(x: Tensor<"f32", R>): Tensor<"f32", R> => p.proj(gelu(p.fc(x))),
  );
}

/** One pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)). [B, T, D] -> [B, T, D]. */
export function block(b: BackboneConfig) {
  return module(
    { norm1: norm(b), attn: attention(b.dim, b.heads, { std: b.initStd }), norm2: norm(b), mlp: mlp(b) },
    (p) => (x: T3, attend: AttentionOptions): T3 => {
      const h = x.add(p.attn(p.norm1(x), attend));
      return h.add(p.mlp(p.norm2(h)));
    },
  );
}

/** The attention options of every layer, or per layer (a KV cache hands each layer its own slice). */
export type Attend = AttentionOptions | ((layer: number) => AttentionOptions);

/** A backbone layer as a module: x [B, T, D] and the attention options -> [B, T, D]. */
export type BlockModule = ModuleDecl<Record<never, never>, (x: T3, attend: AttentionOptions) => T3>;

/**
 * `depth` blocks and the final norm: x [B, T, D] -> normed hidden states [B, T, D]. `layer(i)` makes
 * block i (default: the pre-norm block above).
 */
export function backbone(b: BackboneConfig, layer: (i: number) => BlockModule = () => block(b)) {
  return module(
    { blocks: Array.from({ length: b.depth }, (_, i) => layer(i)), norm: norm(b) },
    (p) => (x: T3, attend: Attend): T3 => {
      let h = x;
      p.blocks.forEach((layer, i) => (h = layer(h, typeof attend === "function" ? attend(i) : attend)));
      return p.norm(h);
    },
  );
}

/**
 * The attention options for a batch: the mask rule with its layout, and rotary positions.
 * "rope2d": one 2-D rotation for every position, with coordinates (row, col) for a patch and
 * (pos, pos) for text, so text-to-text scores depend on pos differences only (a 1-D RoPE whose
 * frequencies repeat in both halves of the head dim) and patch-to-patch scores on (row, col)
 * differences. "learned": 1-D RoPE on pos everywhere (a patch's pos is its index in the image); the
 * 2-D signal comes from the learned table added to the patches.
 */
export function attendOptions(layout: Layout, b: BackboneConfig, image: ImageConfig): AttentionOptions {
  return { mask: transfusionMask(), layout, rope: rotary(layout, b, image) };
}

/** The rotary embedding of `attendOptions` for positions with these layout fields (any [B, T]). */
export function rotary(
  layout: Layout,
  b: BackboneConfig,
  image: ImageConfig,
): (qk: Tensor<"f32", 4>) => Tensor<"f32", 4> {
  if (image.positions === "learned") return (qk) => rope1d(qk, layout.pos, b.ropeBase);
  const patch = layout.modality.eq(MODALITY.image);
  const rows = where(patch, layout.row, layout.pos);
  const cols = where(patch, layout.col, layout.pos);
  return (qk) => rope2d(qk, rows, cols, b.ropeBase);
}
