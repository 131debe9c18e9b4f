/**
 * A small convolutional VAE (images NHWC [B, H, W, C] in [0, 1]): conv encoder to a latent grid
 * (mean and log-variance, H / 2^levels on a side), a reparameterised sample, a conv decoder back,
 * and loss = mean squared reconstruction error + klWeight * KL(q(z|x) || N(0, 1)) per latent value.
 * The conv layers are the U-Net codec's (spec/transfusion/unet.ts).
 */
import { gelu, layernorm } from "../nn/mod.ts";
import { module } from "../params.ts";
import { randn } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { avgPool2, conv, upsample2 } from "../transfusion/unet.ts";

type T4 = Tensor<"f32", 4>;

export interface VaeConfig {
  /** Image side and channels; the side must be divisible by 2^widths.length. */
  readonly size: number;
  readonly channels: number;
  /** Conv widths per level, outermost first; each level halves the side. */
  readonly widths: readonly number[];
  readonly latentChannels: number;
  readonly klWeight: number;
  readonly initStd: number;
}

/** The latent grid's shape [side, side, channels] for a config. */
export function latentShape(c: VaeConfig): [number, number, number] {
  return [c.size / 2 ** c.widths.length, c.size / 2 ** c.widths.length, c.latentChannels];
}

/** Refuses a config the convs cannot walk, naming the key and value. */
export function checkVaeConfig(c: VaeConfig, where: string): void {
  const f = 2 ** c.widths.length;
  if (c.widths.length === 0) throw new Error(`${where}: widths must list at least one level`);
  if (c.size % f !== 0) {
    throw new Error(
      `${where}: size = ${c.size} must be divisible by 2^${c.widths.length} = ${f} (one halving per width)`,
    );
  }
}

/** x [N, H, W, w]: x + conv(GELU(conv(LN(x)))). */
function resBlock(width: number, std: number) {
  return module(
    { norm: layernorm(width), conv1: conv(width, width, 3, std), conv2: conv(width, width, 3, std) },
    (p) => (x: T4): T4 => x.add(p.conv2(gelu(p.conv1(p.norm(x))))) as T4,
  );
}

export function vaeParams(c: VaeConfig) {
  const std = c.initStd;
  const w = c.widths;
  const last = w[w.length - 1]!;
  return {
    encoder: module(
      {
        stem: conv(c.channels, w[0]!, 3, std),
        levels: w.map((width, i) => ({
          block: resBlock(width, std),
          next: conv(width, w[i + 1] ?? width, 1, std),
        })),
        // mean and log-variance in one conv, split on the channel axis
        head: conv(last, 2 * c.latentChannels, 1, std),
      },
      (p) => (x: T4): { mean: T4; logvar: T4 } => {
        let h = p.stem(x);
        for (const level of p.levels) h = level.next(avgPool2(level.block(h)));
        const stats = p.head(h);
        return { mean: stats.slice(-1, 0, c.latentChannels), logvar: stats.slice(-1, c.latentChannels) };
      },
    ),
    decoder: module(
      {
        stem: conv(c.latentChannels, last, 3, std),
        levels: w.map((width, i) => ({
          enter: conv(w[i + 1] ?? width, width, 1, std),
          block: resBlock(width, std),
        })),
        norm: layernorm(w[0]!),
        out: conv(w[0]!, c.channels, 3, std),
      },
      (p) => (z: T4): T4 => {
        let h = p.stem(z);
        for (let i = w.length - 1; i >= 0; i--) {
          const level = p.levels[i]!;
          h = level.block(upsample2(level.enter(h)));
        }
        return p.out(p.norm(h));
      },
    ),
  };
}

type VaeParams = {
  encoder: (x: T4) => { mean: T4; logvar: T4 };
  decoder: (z: T4) => T4;
};

/** The training loss and its parts for a batch of images x [B, H, W, C]. */
export function vaeLoss(p: VaeParams, c: VaeConfig, x: T4) {
  const { mean, logvar } = p.encoder(x);
  const z = mean.add(logvar.mul(0.5).exp().mul(randn(mean.shape as [number, number, number, number]))) as T4;
  const recon = p.decoder(z).sub(x).square().mean();
  // KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - 1 - log s^2), averaged over latent values.
  const kl = mean.square().add(logvar.exp()).sub(logvar).sub(1).mul(0.5).mean();
  return { loss: recon.add(kl.mul(c.klWeight)) as Tensor<"f32", 0>, metrics: { recon, kl } };
}
