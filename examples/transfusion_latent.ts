/**
 * Transfusion on VAE latents of the shapes scenes (the paper's setting: diffusion over a VAE's latent
 * grid, not pixels). The VAE is the run in VAE_RUN (train it first: `deno task train
 * examples/vae_shapes.ts --out runs/vae_shapes`); the image shape (latent channels and side) comes
 * from that run: from its cached latents, else from its run.json config over examples/vae_shapes.ts.
 * On first load the spec encodes the first TRAIN_SCENES and HELD_OUT_SCENES shapes scenes with the
 * VAE's `encode` entry, once, on the device, and caches them next to the run (data/shapes_latents.ts);
 * a VAE run trained further gets new latents (the cache is keyed by its step).
 *
 * 8x8x4 latents in 2x2 patches: 16 patches of 16 values, the same 16-patch grid as the pixel specs
 * (examples/transfusion_shapes.ts), through the U-Net patch codec (one conv level, 8 -> 4). The
 * backbone, optimizer and budget are the pixel specs', for bench/shapes_compare.ts. `deno task eval`
 * decodes generated latents with the VAE's `decode` entry before the pixel checker reads them;
 * `deno task sample`/`generate` write the decoded 32x32 RGB pictures, and `deno task compile` puts
 * the VAE's decoder into the module (the data source declares the latents: `DataSource.latents`).
 */
import { transfusion } from "../spec/transfusion/mod.ts";
import { SHAPES_CAPTION_BYTES } from "../data/shapes.ts";
import { latentShapesSource, openLatentTable, vaeRunInfo } from "../data/shapes_latents.ts";
import { latentShape, type VaeConfig } from "../spec/vae/mod.ts";
import vae from "./vae_shapes.ts";
import { resolveConfig } from "../spec/config.ts";

export const VAE_RUN = "runs/vae_shapes";
export const TRAIN_SCENES = 1024;
export const HELD_OUT_SCENES = 128;

const run = vaeRunInfo(VAE_RUN);
const table = await openLatentTable(VAE_RUN, TRAIN_SCENES, HELD_OUT_SCENES);
const vaeConfig = resolveConfig(
  vae.config,
  run?.config ?? {},
  "examples/vae_shapes.ts",
) as unknown as VaeConfig;
const [side, , channels] = table ? [table.side, 0, table.channels] : latentShape(vaeConfig);

export default transfusion({
  name: "transfusion_latent",
  backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
  text: { vocab: 261, captionLength: SHAPES_CAPTION_BYTES },
  image: {
    size: side,
    channels,
    patch: side / 4,
    imagesPerRow: 1,
    encoder: "unet",
    unetWidths: [32],
    positions: "rope2d",
  },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0.1 },
  loss: { lambda: 5 },
  batch: 32,
  training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  // Declares its images as latents of VAE_RUN: sample, generate and the compiled module decode them.
  data: (c, dims) =>
    latentShapesSource(
      table,
      VAE_RUN,
      c,
      dims,
      { captionFirst: 0.7, sceneSize: 32 },
      "examples/transfusion_latent.ts",
    ),
});
