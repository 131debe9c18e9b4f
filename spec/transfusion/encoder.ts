/**
 * The modality-specific edges of the model: the timestep embedding, patch -> vector (encoder) and
 * vector -> patch (decoder), and how the timestep conditions the patch vectors. Patch rows are
 * [B, N*P, K] with K = C*p*p values; vectors are [B, N*P, D].
 *
 * Codecs: "linear" (one linear layer each way), "unet" (the paper's: convolutions over the whole
 * image down to the patch grid and back, with skips; unet.ts), and "mlp", which keeps the U-Net's
 * shape at the patch level without convolution: down blocks (residual MLP blocks with plain
 * LayerNorm, conditioned on t) widen each patch's features level by level into the transformer's
 * width, and up blocks mirror them on the way out, each adding the skip from its down block across
 * the transformer. With "mlp" pixels only mix inside a patch; patches mix in the transformer.
 */
import { gelu, layernorm, linear, silu, sinusoidalEmbedding } from "../nn/mod.ts";
import { module, param, type ParamDecl, zeros } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import type { BackboneConfig, ImageConfig } from "./config.ts";
import { unetDecoder, unetEncoder } from "./unet.ts";

type T3 = Tensor<"f32", 3>;

/** t f32 [B, N] -> [B, N, D]: MLP(sinusoidal(t * scale)) (scale = T for flow matching's t in [0, 1]). */
export function timestepEmbedding(b: BackboneConfig, image: ImageConfig, scale: number) {
  const std = b.initStd;
  return module(
    { fc1: linear(image.timestepDim, b.dim, { std }), fc2: linear(b.dim, b.dim, { std }) },
    (p) => (t: Tensor<"f32", 2>): T3 =>
      p.fc2(silu(p.fc1(sinusoidalEmbedding(t.mul(scale) as Tensor<"f32", 2>, image.timestepDim)))),
  );
}

/** x [..., w] + temb: LayerNorm -> linear -> (+ projected temb) -> GELU -> linear, residual. */
function residualBlock(width: number, dim: number, std: number) {
  return module(
    {
      norm: layernorm(width),
      fc1: linear(width, width, { std }),
      time: linear(dim, width, { std }),
      fc2: linear(width, width, { std }),
    },
    (p) => (x: T3, temb: T3): T3 => x.add(p.fc2(gelu(p.fc1(p.norm(x)).add(p.time(temb)) as T3))),
  );
}

/** patches [B, N*P, K], temb [B, N*P, D] -> vectors [B, N*P, D] and the skips the decoder takes. */
export type Encode = (patches: T3, temb: T3) => { vectors: T3; skips: Skip[] };
/** A skip across the transformer: [B, N*P, w] rows ("mlp") or [B*N, H, W, w] feature maps ("unet"). */
export type Skip = Tensor<"f32", number>;
/** h [B, N*P, D] (read back from the patch positions), the encoder's skips, temb -> [B, N*P, K]. */
export type Decode = (h: T3, skips: readonly Skip[], temb: T3) => T3;

export function patchEncoder(b: BackboneConfig, image: ImageConfig, values: number) {
  const std = b.initStd;
  if (image.encoder === "linear") {
    return module(
      { proj: linear(values, b.dim, { std }) },
      (p): Encode => (x) => ({ vectors: p.proj(x), skips: [] }),
    );
  }
  if (image.encoder === "unet") return unetEncoder(b, image);
  const widths = image.unetWidths;
  const down = widths.map((w, i) => ({
    res: residualBlock(w, b.dim, std),
    next: linear(w, widths[i + 1] ?? b.dim, { std }),
  }));
  return module({ stem: linear(values, widths[0]!, { std }), down }, (p): Encode => (x, temb) => {
    let h = p.stem(x);
    const skips: T3[] = [];
    for (const level of p.down) {
      h = level.res(h, temb);
      skips.push(h);
      h = level.next(h);
    }
    return { vectors: h, skips };
  });
}

export function patchDecoder(b: BackboneConfig, image: ImageConfig, values: number) {
  const std = b.initStd;
  if (image.encoder === "linear") {
    return module({ proj: linear(b.dim, values, { std }) }, (p): Decode => (h) => p.proj(h));
  }
  if (image.encoder === "unet") return unetDecoder(b, image);
  const widths = image.unetWidths;
  // Innermost level first, mirroring the encoder.
  const up = widths.map((w, i) => ({
    enter: linear(widths[i + 1] ?? b.dim, w, { std }),
    res: residualBlock(w, b.dim, std),
  }))
    .reverse();
  return module(
    { up, norm: layernorm(widths[0]!), proj: linear(widths[0]!, values, { std }) },
    (p): Decode => (h, skips, temb) => {
      let x = h;
      p.up.forEach((level, i) => {
        x = level.res(level.enter(x).add(skips[skips.length - 1 - i]! as T3) as T3, temb);
      });
      return p.proj(p.norm(x));
    },
  );
}

type Modulation = { readonly w: ParamDecl<"f32", 2>; readonly b: ParamDecl<"f32", 1> };

/**
 * How t reaches the patch vectors, on the way in (`side` "input") and out ("output"). "add": vectors
 * + temb on the way in (the paper), nothing on the way out. "adanorm": LayerNorm without gain, then
 * * (1 + scale) + shift, with [scale, shift] a zero-initialized linear map of silu(temb), on both
 * sides (DiT's adaLN, at the edges only).
 */
export function timestepConditioning(b: BackboneConfig, image: ImageConfig) {
  const modulation = (): Modulation => ({
    w: param([b.dim, 2 * b.dim], zeros()),
    b: param([2 * b.dim], zeros()),
  });
  const params: { input?: Modulation; output?: Modulation } = image.timestep === "adanorm"
    ? { input: modulation(), output: modulation() }
    : {};
  return module(params, (p) => (x: T3, temb: T3, side: "input" | "output"): T3 => {
    const mod = p[side];
    if (!mod) return side === "input" ? x.add(temb) as T3 : x;
    const ss = silu(temb).matmul(mod.w).add(mod.b); // [B, N*P, 2D]
    const [scale, shift] = [ss.slice(-1, 0, b.dim), ss.slice(-1, b.dim)];
    const centered = x.sub(x.meanKeep(-1));
    const normed = centered.mul(centered.square().meanKeep(-1).add(b.normEps).rsqrt());
    return normed.mul(scale.add(1)).add(shift) as T3;
  });
}
