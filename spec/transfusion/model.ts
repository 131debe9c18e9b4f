/**
 * `transfusion(options)`: one transformer over text and image patches, text trained by next-token
 * prediction and images by diffusion (Zhou et al. 2024). The entries and their inputs are fixed by
 * the contract shared with the data pipeline and the sampler (docs/transfusion_contract.md):
 *
 *   loss     tokens, layout_*, images, patch_pos, image_valid, image_first (+ seed) -> loss, lm, diffusion
 *            (+ image_weight [B, N] with loss.imageWeights "input")
 *   denoise  tokens, layout_*, x_t, t, patch_pos, image_valid                     -> pred (target space)
 *   logits   tokens, layout_*, images (clean, t = 0), patch_pos, image_valid      -> logits
 *
 * and the cached entries of docs/kv_contract.md (prefill, decode, denoise_span; see cached.ts).
 */
import { userSite } from "../../compiler/ir/mod.ts";
import { full } from "../functions.ts";
import { type Layout, layoutInputs, layoutOf } from "../layout.ts";
import { input, model } from "../model.ts";
import { constant, type Materialized, normal, param } from "../params.ts";
import type { Tensor } from "../tensor.ts";
import { attendOptions, backbone } from "./backbone.ts";
import { rowGeometry, type TransfusionConfig } from "./config.ts";
import { noiseImages, perImage } from "./diffusion.ts";
import { type Skip, timestepConditioning, timestepEmbedding } from "./encoder.ts";
import { slotModules } from "./checked.ts";
import { totalLoss } from "./loss.ts";
import type { TransfusionPieces } from "./pieces.ts";
import { lmLoss } from "./lm.ts";
import { resolveOptions, type TransfusionOptions } from "./options.ts";
import {
  type ImageGeometry,
  patchify,
  placeInSequence,
  placement,
  readPatches,
  unpatchify,
} from "./patches.ts";
import { diffusionSchedule } from "./schedule.ts";
import { cachedEntries } from "./cached.ts";

type T2 = Tensor<"f32", 2>;
type T3 = Tensor<"f32", 3>;
type T4 = Tensor<"f32", 4>;
type T5 = Tensor<"f32", 5>;

const geometry = (c: TransfusionConfig): ImageGeometry & { P: number } => ({
  N: c.image.imagesPerRow,
  C: c.image.channels,
  size: c.image.size,
  patch: c.image.patch,
  P: rowGeometry(c).P,
});

/** The parameter tree; each piece's module sits in its slot (pieces.ts), under its own names. */
function params(c: TransfusionConfig, pieces: TransfusionPieces = {}, site?: string) {
  const { dim, initStd: std } = c.backbone;
  const g = geometry(c);
  const schedule = diffusionSchedule(c.diffusion);
  const slots = slotModules(c, pieces, site);
  return {
    embed: slots.embed,
    time: timestepEmbedding(c.backbone, c.image, c.diffusion.schedule === "flow" ? c.diffusion.T : 1),
    encoder: slots.encoder,
    condition: timestepConditioning(c.backbone, c.image),
    backbone: backbone(c.backbone, slots.block),
    head: slots.lmHead,
    decoder: slots.decoder,
    ...(c.image.positions === "learned" ? { patchPositions: param([g.P, dim], normal(std)) } : {}),
    ...(schedule.kind === "flow"
      ? {}
      : { schedule: { alphaBar: constant([c.diffusion.T], schedule.alphaBar) } }),
  };
}
export type ParamDecls = ReturnType<typeof params>;
export type Params = Materialized<ParamDecls>;

/** What one pass over a batch sees. images: the (noised) images fed in; t: their timesteps [B, N]. */
export interface Batch {
  readonly tokens: Tensor<"i32", 2>;
  readonly layout: Layout;
  readonly images: T5;
  readonly t: T2;
  readonly patchPos: Tensor<"i32", 3>;
}

/** Images on their way into the backbone: what the decoder needs again on the way out. */
export interface EncodedImages {
  /** Patch vectors [B, N*P, D], conditioned on t (and the learned positions). */
  readonly patches: T3;
  readonly skips: Skip[];
  /** The timestep embedding, one copy per patch [B, N*P, D]. */
  readonly temb: T3;
}

/** images [B, N, C, H, W] at timesteps t [B, N] -> patch vectors (N is any number of images). */
function encodeImages(p: Params, c: TransfusionConfig, images: T5, t: T2): EncodedImages {
  const g = { ...geometry(c), N: images.dim(1) };
  const [b, dim] = [images.dim(0), c.backbone.dim];
  const temb = p.time(t) // [B, N, D] -> one copy per patch [B, N*P, D]
    .unsqueeze(2).broadcastTo([b, g.N, g.P, dim]).reshape([b, g.N * g.P, dim]);
  const { vectors, skips } = p.encoder(patchify(images, g), temb);
  let patches = p.condition(vectors, temb, "input"); // [B, N*P, D]
  if (p.patchPositions) {
    patches = patches.reshape([b, g.N, g.P, dim]).add(p.patchPositions).reshape([b, g.N * g.P, dim]);
  }
  return { patches, skips, temb };
}

/** The backbone's hidden states at the patches [B, N*P, D] -> predictions [B, N, C, H, W]. */
function decodeImages(p: Params, c: TransfusionConfig, h: T3, e: EncodedImages): T5 {
  const g = geometry(c);
  return unpatchify(p.decoder(p.condition(h, e.temb, "output"), e.skips, e.temb), {
    ...g,
    N: h.dim(1) / g.P,
  });
}

/** Sees each layer's keys and values [B, H, T, Dh] (a cache being filled) and returns them. */
export type KvHook = (layer: number, k: Tensor<"f32", 4>, v: Tensor<"f32", 4>) => readonly [T4, T4];

/** The shared forward: text and patches in one sequence, then logits and predictions on demand. */
function forward(p: Params, c: TransfusionConfig, x: Batch, kv?: KvHook) {
  const seq = x.tokens.dim(1);
  const e = encodeImages(p, c, x.images, x.t);
  const place = placement(x.patchPos, seq); // [B, T, N*P]
  const attend = attendOptions(x.layout, c.backbone, c.image);
  const h = p.backbone(
    placeInSequence(p.embed(x.tokens), e.patches, place),
    kv ? (layer) => ({ ...attend, kv: (k, v) => kv(layer, k, v) }) : attend,
  ); // [B, T, D]
  return {
    logits: () => p.head(h), // [B, T, vocab]
    pred: () => decodeImages(p, c, readPatches(h, place), e),
  };
}

/** The "logits" entry's inputs as a batch: the images clean (t = 0), absent ones zeroed. */
function cleanBatch(x: Record<string, Tensor>): Batch {
  const valid = x.image_valid as T2;
  return {
    tokens: x.tokens as Tensor<"i32", 2>,
    layout: layoutOf(x as never),
    images: (x.images as T5).mul(perImage(valid)) as T5,
    t: full([valid.dim(0), valid.dim(1)], 0, "f32"),
    patchPos: x.patch_pos as Tensor<"i32", 3>,
  };
}

/** The contract's inputs of each entry (docs/transfusion_contract.md); every name is fixed. */
function entryInputs(c: TransfusionConfig) {
  const g = geometry(c);
  const text = { tokens: input("i32", ["batch", "seq"]), ...layoutInputs() };
  const images = () => input("f32", ["batch", g.N, g.C, g.size, g.size]);
  const slots = { patch_pos: input("i32", ["batch", g.N, g.P]), image_valid: input("f32", ["batch", g.N]) };
  const weights = c.loss.imageWeights === "input" ? { image_weight: input("f32", ["batch", g.N]) } : {};
  return {
    loss: { ...text, images: images(), ...slots, image_first: input("f32", ["batch", g.N]), ...weights },
    denoise: { ...text, x_t: images(), t: input("f32", ["batch", g.N]), ...slots },
    logits: { ...text, images: images(), ...slots },
  };
}

/**
 * Builds a Transfusion model; see TransfusionConfig for every option and its default, and
 * TransfusionPieces (`options.pieces`) for the parts a spec may replace with its own modules.
 */
export function transfusion(options: TransfusionOptions = {}) {
  const site = userSite();
  const { config, schema } = resolveOptions(options, site);
  const pieces = options.pieces ?? {};
  return model({
    name: options.name ?? "transfusion",
    config: schema,
    dims: { batch: options.batch ?? options.training?.batch ?? 32, seq: config.seq },
    precision: (c) => c.precision ?? { storage: "f32" },
    params: (c) => params(c, pieces, site),
    inputs: (c) => entryInputs(c).loss,
    loss: (p, x, c) => {
      const layout = layoutOf(x);
      const noised = noiseImages(x.images, x.image_first, c.diffusion, p.schedule?.alphaBar);
      const out = forward(p, c, {
        tokens: x.tokens,
        layout,
        images: noised.xt,
        t: noised.t,
        patchPos: x.patch_pos,
      });
      const logits = out.logits();
      const lm = lmLoss(logits, x.tokens, layout, c.loss.boiTarget);
      const parts = { lm, logits, pred: out.pred(), target: noised.target, t: noised.t };
      const weight = (x as { image_weight?: T2 }).image_weight;
      return totalLoss(
        { ...parts, valid: x.image_valid, imageFirst: x.image_first, imageWeight: weight },
        c,
        pieces,
      );
    },
    entries: {
      denoise: {
        inputs: (c) => entryInputs(c).denoise,
        outputs: (p, x, c) => {
          const valid = x.image_valid as T2;
          const out = forward(p, c, {
            tokens: x.tokens as Tensor<"i32", 2>,
            layout: layoutOf(x as never),
            images: x.x_t as T5,
            t: x.t as T2,
            patchPos: x.patch_pos as Tensor<"i32", 3>,
          });
          return { pred: out.pred().mul(perImage(valid)) };
        },
      },
      logits: {
        inputs: (c) => entryInputs(c).logits,
        outputs: (p, x, c) => ({ logits: forward(p, c, cleanBatch(x)).logits() }),
      },
      // prefill, decode, denoise_span: the same model a window at a time over a KV cache (cached.ts).
      ...cachedEntries({ forward, cleanBatch, encodeImages, decodeImages, entryInputs, geometry }),
    },
    ...(options.data ? { data: options.data } : {}),
    ...(options.training ? { training: options.training } : {}),
  });
}
