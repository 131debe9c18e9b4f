import { fmtShape } from "../../compiler/ir/mod.ts";
import { concat, iota } from "../functions.ts";
import type { Inc } from "../rank.ts";
import { fail, type Tensor } from "../tensor.ts";

/**
 * Sinusoidal timestep embedding as in DDPM/ADM/DiT: [cos(t f_0), ..., cos(t f_{h-1}), sin(t f_0), ...,
 * sin(t f_{h-1})] with h = floor(dim / 2) and f_i = maxPeriod^(-i/h); an odd `dim` gets a trailing 0.
 * (The 1-D position encoding of "Attention Is All You Need" uses the same frequencies, sin first.)
 * t: f32 [...] (e.g. [B], diffusion steps or noise levels) -> [..., dim].
 */
export function sinusoidalEmbedding<R extends number>(
  t: Tensor<"f32", R>,
  dim: number,
  maxPeriod = 10000,
): Tensor<"f32", Inc<R>> {
  if (!Number.isInteger(dim) || dim < 2) {
    fail("sinusoidalEmbedding", `dim must be an integer >= 2, got ${dim}`);
  }
  if (t.dtype !== "f32") fail("sinusoidalEmbedding", `t must be f32, got ${t.dtype}${fmtShape(t.shape)}`);
  const half = Math.floor(dim / 2);
  const freqs = iota([half], 0, "f32").mul(-Math.log(maxPeriod) / half).exp(); // [h]
  const args = t.unsqueeze(-1).mul(freqs) as Tensor<"f32", number>; // [..., h]
  const emb = concat([args.cos(), args.sin()], -1); // [..., 2h]
  return (dim % 2 === 1 ? emb.pad(-1, 0, 1) : emb) as never;
}
