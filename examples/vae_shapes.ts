/**
 * The conv VAE of examples/vae.ts on the built-in shapes scenes (data/shapes_images.ts): 32x32 RGB in
 * [-1, 1], two levels (widths 16, 32) down to an 8x8x4 latent grid (3072 values to 256), mean squared
 * reconstruction + 1e-3 * KL, batches of 16 (sized for a 2-core CPU). `deno task eval` on a run of it
 * reports the reconstruction error of held-out scenes; examples/transfusion_latent.ts trains
 * Transfusion on its latents.
 */
import { VAE_CONFIG, vaeSpec } from "./vae.ts";

export default vaeSpec("vae_shapes", {
  ...VAE_CONFIG,
  data: "shapes",
  size: 32,
  channels: 3,
  widths: [16, 32],
  latentChannels: 4,
}, 16);
