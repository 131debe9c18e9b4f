/**
 * The diffusion side of the loss, in the graph: per-image timesteps and noise drawn from the seed,
 * the noised images, the regression target, and the per-image MSE.
 */
import { full, where } from "../functions.ts";
import { rand, randn } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import type { DiffusionConfig } from "./config.ts";

type T2 = Tensor<"f32", 2>;
type T5 = Tensor<"f32", 5>;

export interface Noised {
  /** The noised images [B, N, C, H, W]. */
  readonly xt: T5;
  /** What the model should predict, in the config's target space [B, N, C, H, W]. */
  readonly target: T5;
  /** The timestep as the "denoise" entry takes it [B, N]: DDPM integer-valued in [0, T); flow [0, 1). */
  readonly t: T2;
}

/** [B, N] -> [B, N, 1, 1, 1], to scale whole images. */
export const perImage = (x: T2): T5 => x.reshape([x.dim(0), x.dim(1), 1, 1, 1]);

/**
 * Draws t per image, uniform below T, or below noiseLimit where `imageFirst` is 1 (noise limiting
 * for captioning rows), and noises x0 [B, N, C, H, W]. DDPM: t integer, x_t = sqrt(abar_t) x0 +
 * sqrt(1 - abar_t) eps with abar from the frozen table [T]. Flow: t in [0, 1), x_t = (1 - t) x0 + t eps.
 */
export function noiseImages(
  x0: T5,
  imageFirst: T2,
  d: DiffusionConfig,
  alphaBar: Tensor<"f32", 1> | undefined,
): Noised {
  const [b, n] = [x0.dim(0), x0.dim(1)];
  const limited = imageFirst.gt(0.5);
  const u = rand([b, n]);
  const eps = randn(x0.shape as [number, number, number, number, number]);
  if (d.schedule === "flow") {
    const t = u.mul(where(limited, full([b, n], d.noiseLimit / d.T, "f32"), 1)) as T2;
    const xt = x0.mul(perImage(t.neg().add(1))).add(eps.mul(perImage(t))) as T5;
    return { xt, target: eps.sub(x0) as T5, t };
  }
  if (!alphaBar) throw new Error("noiseImages: a DDPM schedule needs its alpha_bar table");
  const tmax = where(limited, full([b, n], d.noiseLimit, "f32"), d.T);
  const step = u.mul(tmax).cast("i32").minimum(d.T - 1); // floor: u * tmax >= 0
  const abar = alphaBar.gather(step) as T2; // [B, N]
  const [signal, noise] = [perImage(abar.sqrt()), perImage(abar.neg().add(1).sqrt() as T2)];
  const xt = x0.mul(signal).add(eps.mul(noise)) as T5;
  const target = d.target === "eps" ? eps : d.target === "v" ? eps.mul(signal).sub(x0.mul(noise)) as T5 : x0;
  return { xt, target, t: step.cast("f32") as T2 };
}

/** Each image's mean squared error (over C, H, W): pred, target [B, N, C, H, W] -> [B, N]. */
export function imageMse(pred: T5, target: T5): T2 {
  return pred.sub(target).square().mean([2, 3, 4]) as T2;
}

/**
 * The images' losses [B, N] summed with their weights (default `valid`), over the number of images
 * present: a weight scales its image's share, so weight 1 everywhere is the plain mean over images.
 */
export function weightedImageMean(losses: T2, valid: T2, weight: T2 = valid): Tensor<"f32", 0> {
  return losses.mul(weight).sum().div(valid.sum().maximum(1));
}

/** Mean squared error per image (over C, H, W), then the mean over images where `valid` is 1. */
export function perImageMse(pred: T5, target: T5, valid: T2): Tensor<"f32", 0> {
  return weightedImageMean(imageMse(pred, target), valid);
}
