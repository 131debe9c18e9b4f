/**
 * A convolutional VAE on MNIST digits (28x28, one channel): two levels (widths 16, 32) down to a
 * 7x7x4 latent grid, mean squared reconstruction + 1e-3 * KL. `data` picks the images: "mnist", or
 * "shapes" (the built-in shapes scenes, data/shapes_images.ts: RGB, so channels 3;
 * examples/vae_shapes.ts has the settings for them). Entries: `encode` (x -> mean, logvar), `decode`
 * (z -> image), for training Transfusion on the latents (examples/transfusion_latent.ts).
 */
import { type DataSource, input, model, type Tensor } from "../spec/mod.ts";
import { checkVaeConfig, latentShape, vaeLoss, vaeParams } from "../spec/vae/mod.ts";
import { loadMnist, MNIST_PIXELS, MNIST_SIDE } from "../data/mnist.ts";
import { shapesImages } from "../data/shapes_images.ts";

export const VAE_CONFIG = {
  data: "mnist" as "mnist" | "shapes",
  size: MNIST_SIDE,
  channels: 1,
  widths: [16, 32],
  latentChannels: 4,
  klWeight: 1e-3,
  initStd: 0.1,
};
export type VaeSpecConfig = typeof VAE_CONFIG;
type Config = VaeSpecConfig;
type T4 = Tensor<"f32", 4>;

function images(c: Config, dims: Readonly<Record<string, number>>): DataSource {
  checkVaeConfig(c, "examples/vae.ts");
  const batch = dims.batch ?? 32;
  if (c.data === "shapes") {
    if (c.channels !== 3) {
      throw new Error(
        `examples/vae.ts: data "shapes" is RGB, so channels must be 3, got ${c.channels} ` +
          `(examples/vae_shapes.ts has the settings for the shapes scenes)`,
      );
    }
    return shapesImages(c.size, batch);
  }
  if (c.data !== "mnist") {
    throw new Error(`examples/vae.ts: data must be "mnist" or "shapes", got ${JSON.stringify(c.data)}`);
  }
  if (c.size !== MNIST_SIDE || c.channels !== 1) {
    throw new Error(
      `examples/vae.ts: data "mnist" is ${MNIST_SIDE}x${MNIST_SIDE}, one channel; got size ${c.size}, ` +
        `channels ${c.channels}`,
    );
  }
  const { train, test } = loadMnist();
  const pack = (set: typeof train, indices: readonly number[]) => {
    const x = new Float32Array(indices.length * MNIST_PIXELS);
    indices.forEach((k, i) =>
      x.set(set.images.subarray(k * MNIST_PIXELS, (k + 1) * MNIST_PIXELS), i * MNIST_PIXELS)
    );
    return { x };
  };
  return {
    tokensPerBatch: batch,
    evalBatches: Math.floor(test.count / batch),
    batch(step, seed) {
      let a = (seed * 1_000_003 + step) >>> 0;
      const random = () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = Math.imul(a ^ (a >>> 15), a | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      return pack(train, Array.from({ length: batch }, () => Math.floor(random() * train.count)));
    },
    evalBatch: (index) => pack(test, Array.from({ length: batch }, (_, i) => index * batch + i)),
    describe: () => `MNIST digits for the VAE: ${train.count} train / ${test.count} test, 28x28`,
  };
}

/** The VAE spec over `config` (the defaults: MNIST); examples/vae_shapes.ts is it over the shapes scenes. */
export function vaeSpec(name: string, config: Config, batch = 32) {
  return model({
    name,
    config,
    dims: { batch },
    params: vaeParams,
    inputs: (c) => ({ x: input("f32", ["batch", c.size, c.size, c.channels]) }),
    loss: (p, { x }, c) => vaeLoss(p, c, x as T4),
    entries: {
      encode: {
        inputs: (c) => ({ x: input("f32", ["batch", c.size, c.size, c.channels]) }),
        outputs: (p, { x }) => p.encoder(x as T4),
      },
      decode: {
        inputs: (c) => ({ z: input("f32", ["batch", ...latentShape(c)]) }),
        outputs: (p, { z }) => ({ image: p.decoder(z as T4) }),
      },
    },
    data: images,
    training: { steps: 1000, batch, lr: 2e-3, warmup: 50, weightDecay: 0 },
  });
}

export default vaeSpec("vae", VAE_CONFIG);
