/**
 * The paper's U-Net patch codec: convolutions over the whole image, so pixels mix across patch
 * borders before the transformer sees the patch grid.
 *
 * Encoder: patch rows -> images [B*N, H, W, C] (NHWC) -> a 3x3 stem conv -> one level per entry of
 * `unetWidths` (a residual conv block with plain LayerNorm over channels and the timestep embedding
 * added inside it, its output kept as a skip, then a 2x2 average pool while the resolution is still
 * above the patch grid and a 1x1 conv to the next width) -> whatever factor is left to reach the
 * grid is folded into channels (space-to-depth) -> a linear map to the transformer's width, one
 * vector per patch. Decoder: the mirror, upsampling by nearest neighbour and adding each level's
 * skip before its residual block, then LayerNorm and a 3x3 conv back to C channels.
 *
 * Convolutions are spec/nn's conv2d (the conv2d primitive: an implicit-GEMM kernel with the bias
 * fused as its epilogue), pooling and upsampling its avgPool2d and upsampleNearest.
 */
import { avgPool2d, conv2d, gelu, layernorm, linear, upsampleNearest } from "../nn/mod.ts";
import { module, normal, param, zeros } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import type { BackboneConfig, ImageConfig } from "./config.ts";

type T3 = Tensor<"f32", 3>;
type T4 = Tensor<"f32", 4>;

/** x [N, H, W, Cin] * w [k, k, Cin, Cout] (odd k, stride 1, "same" zero padding) -> [N, H, W, Cout]. */
function convSame(x: T4, w: Tensor<"f32", 4>): T4 {
  return conv2d(x, w, { padding: (w.dim(0) - 1) / 2 });
}

export function conv(cin: number, cout: number, k: number, std: number) {
  return module(
    { w: param([k, k, cin, cout], normal(std)), b: param([cout], zeros()) },
    (p) => (x: T4): T4 => convSame(x, p.w).add(p.b) as T4,
  );
}

/** [N, H, W, C] -> [N, H/2, W/2, C], the mean of each 2x2 block. */
export const avgPool2 = (x: T4): T4 => avgPool2d(x, 2);

/** [N, H, W, C] -> [N, 2H, 2W, C], each pixel repeated over a 2x2 block. */
export const upsample2 = (x: T4): T4 => upsampleNearest(x, 2);

/** [N, g*r, g*r, C] -> [N, g, g, r*r*C] (r x r blocks into channels), and back. */
function spaceToDepth(x: T4, r: number): T4 {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  return x.reshape([n, h / r, r, w / r, r, c]).permute([0, 1, 3, 2, 4, 5])
    .reshape([n, h / r, w / r, r * r * c]) as T4;
}
function depthToSpace(x: T4, r: number, c: number): T4 {
  const [n, g] = x.shape as [number, number];
  return x.reshape([n, g, g, r, r, c]).permute([0, 1, 3, 2, 4, 5]).reshape([n, g * r, g * r, c]) as T4;
}

/** x [N, H, W, w], temb [N, 1, 1, D]: x + conv(GELU(conv(LN(x)) + linear(temb))). */
function convBlock(width: number, dim: number, std: number) {
  return module(
    {
      norm: layernorm(width),
      conv1: conv(width, width, 3, std),
      time: linear(dim, width, { std }),
      conv2: conv(width, width, 3, std),
    },
    (p) => (x: T4, temb: T4): T4 => x.add(p.conv2(gelu(p.conv1(p.norm(x)).add(p.time(temb)) as T4))) as T4,
  );
}

/** How the encoder walks from the image to the patch grid. */
export interface UnetPlan {
  /** Per level: whether a 2x2 pool follows it. */
  readonly pools: readonly boolean[];
  /** The factor left after the pools, folded into channels before the projection. */
  readonly fold: number;
}

/** Pool by 2 after a level while what is left to reach the grid is even. */
export function unetPlan(image: ImageConfig): UnetPlan {
  let left = image.patch;
  const pools = image.unetWidths.map(() => {
    const pool = left % 2 === 0;
    if (pool) left /= 2;
    return pool;
  });
  return { pools, fold: left };
}

interface Geometry {
  readonly grid: number;
  readonly images: number;
}
const geometryOf = (image: ImageConfig, rows: T3): Geometry => {
  const grid = image.size / image.patch;
  return { grid, images: rows.dim(0) * (rows.dim(1) / (grid * grid)) };
};

/** temb [B, N*P, D] (one copy per patch) -> [B*N, 1, 1, D]. */
function perImage(temb: T3, g: Geometry): T4 {
  const dim = temb.dim(2);
  return temb.reshape([g.images, g.grid * g.grid, dim]).slice(1, 0, 1).reshape([g.images, 1, 1, dim]) as T4;
}

export type UnetEncode = (patches: T3, temb: T3) => { vectors: T3; skips: T4[] };
export type UnetDecode = (h: T3, skips: readonly Tensor<"f32", number>[], temb: T3) => T3;

export function unetEncoder(b: BackboneConfig, image: ImageConfig) {
  const { pools, fold } = unetPlan(image);
  const widths = image.unetWidths;
  const [std, p, c] = [b.initStd, image.patch, image.channels];
  const last = widths[widths.length - 1]!;
  const levels = widths.map((w, i) => ({
    block: convBlock(w, b.dim, std),
    ...(i + 1 < widths.length ? { next: conv(w, widths[i + 1]!, 1, std) } : {}),
  }));
  return module(
    { stem: conv(c, widths[0]!, 3, std), levels, proj: linear(fold * fold * last, b.dim, { std }) },
    (m): UnetEncode => (rows, temb) => {
      const g = geometryOf(image, rows);
      const t = perImage(temb, g);
      let x = m.stem(
        rows.reshape([g.images, g.grid, g.grid, c, p, p]).permute([0, 1, 4, 2, 5, 3])
          .reshape([g.images, image.size, image.size, c]) as T4,
      );
      const skips: T4[] = [];
      m.levels.forEach((level, i) => {
        x = level.block(x, t);
        skips.push(x);
        if (pools[i]) x = avgPool2(x);
        if (level.next) x = level.next(x);
      });
      const vectors = m.proj(spaceToDepth(x, fold)); // [B*N, g, g, D]
      return { vectors: vectors.reshape([rows.dim(0), rows.dim(1), b.dim]) as T3, skips };
    },
  );
}

export function unetDecoder(b: BackboneConfig, image: ImageConfig) {
  const { pools, fold } = unetPlan(image);
  const widths = image.unetWidths;
  const [std, p, c] = [b.initStd, image.patch, image.channels];
  const last = widths[widths.length - 1]!;
  const levels = widths.map((w, i) => ({
    ...(i + 1 < widths.length ? { enter: conv(widths[i + 1]!, w, 1, std) } : {}),
    block: convBlock(w, b.dim, std),
  }));
  return module(
    {
      proj: linear(b.dim, fold * fold * last, { std }),
      levels,
      norm: layernorm(widths[0]!),
      out: conv(widths[0]!, c, 3, std),
    },
    (m): UnetDecode => (h, skips, temb) => {
      const g = geometryOf(image, h);
      const t = perImage(temb, g);
      let x = depthToSpace(m.proj(h.reshape([g.images, g.grid, g.grid, b.dim]) as T4), fold, last);
      for (let i = widths.length - 1; i >= 0; i--) {
        const level = m.levels[i]!;
        if (level.enter) x = level.enter(x);
        if (pools[i]) x = upsample2(x);
        x = level.block(x.add(skips[i]!) as T4, t);
      }
      const pixels = m.out(m.norm(x)); // [B*N, H, W, C]
      return pixels.reshape([g.images, g.grid, p, g.grid, p, c]).permute([0, 1, 3, 5, 2, 4])
        .reshape([h.dim(0), h.dim(1), c * p * p]) as T3;
    },
  );
}
