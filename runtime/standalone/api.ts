/**
 * The public API of a generated module's runtime.js, as declarations only. `deno task compile` copies
 * this file verbatim to DIR/runtime.d.ts (runtime.js names it with `@ts-self-types`), so it imports
 * nothing; entry.ts types its exports against these declarations, so the two cannot drift apart.
 */

/** Pixels, row-major [height, width, 4], 8 bits per channel (RGBA). */
export interface Image {
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8ClampedArray;
}

/** A generated image: its pixels and the model's own values. */
export interface GeneratedImage extends Image {
  /**
   * [channels, height, width] in [-1, 1]: as the model produced them, or for a model of latents
   * (`ModelInfo.latent`) as the module's VAE decoder made them of `latent`.
   */
  readonly values: Float32Array;
  /** A model of latents only: the latent it generated, [channels, size, size] as it was trained on. */
  readonly latent?: Float32Array;
}

export type SamplerName = "ddpm" | "ddim" | "euler" | "heun";

export interface GenerateRequest {
  readonly prompt: string;
  /**
   * "caption" (default): the prompt fills the caption slot and an image follows, as in training
   * (text-to-image). "text": the prompt's bytes follow BOS and the model continues on its own.
   */
  readonly promptAs?: "caption" | "text";
  /** Tokens the model may write (BOI counts); default the caption length. 0: only the prompted image. */
  readonly maxTokens?: number;
  /** Text sampling: greedy by default (temperature 0); top-k and nucleus (top-p) filters. */
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  /** Diffusion steps per image; default 50 (capped at the schedule's T). */
  readonly steps?: number;
  /** Classifier-free guidance weight; default 3 (0 and 1: none). */
  readonly guidance?: number;
  /** The same seed gives the same images; default 0. */
  readonly seed?: number;
  /** Default: ddim for DDPM models, euler for flow matching. */
  readonly sampler?: SamplerName;
}

export interface GenerateResult {
  /** The text the model wrote after the prompt (special tokens left out). */
  readonly text: string;
  readonly images: readonly GeneratedImage[];
}

export interface ModelInfo {
  /** The spec's model name. */
  readonly name: string;
  /** Rows per entry call the plan was compiled for. */
  readonly batch: number;
  /** Positions per row. */
  readonly seq: number;
  readonly vocab: number;
  /** Side of the square images `generate` returns and `caption` reads, and their channels. */
  readonly imageSize: number;
  readonly channels: number;
  /**
   * Present when the model draws a VAE's latents: their shape, and the VAE run whose decoder (carried
   * by the module) turns them into the imageSize x imageSize pictures.
   */
  readonly latent?: {
    readonly size: number;
    readonly channels: number;
    readonly vaeRun: string;
    readonly step: number;
  };
  /** Parameter count (f32 values). */
  readonly parameters: number;
  /** The plan's entries. */
  readonly entries: readonly string[];
  /** Whether generation runs the KV-cached entries or re-runs whole rows. */
  readonly generation: "cached" | "uncached";
}

export interface Model {
  readonly info: ModelInfo;
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /**
   * A greedy caption of an image of the model's size (a GeneratedImage or any RGBA picture; a model
   * of latents encodes a picture with its VAE first).
   */
  caption(image: Image): Promise<string>;
  /** Frees the GPU buffers; the model is unusable afterwards. */
  close(): void;
}

/** Weights: a safetensors file path, its URL, or its bytes. */
export type WeightsSource = string | URL | Uint8Array;

export interface PngOptions {
  /** Each pixel becomes a scale x scale block; default 1. */
  readonly scale?: number;
}

/** The exports of a generated DIR/mod.ts. */
export interface GeneratedModule {
  /** Reads plan.json next to mod.ts and the weights, validates both, and prepares the GPU. */
  load(weights: WeightsSource): Promise<Model>;
  toPng(image: Image, options?: PngOptions): Uint8Array;
}

/** A weights or plan file that does not fit; the message names the file and the tensors at fault. */
export declare class CheckpointError extends Error {}

/** Opens the module whose plan.json is at `plan` with `weights`. */
export declare function openModel(plan: URL, weights: WeightsSource): Promise<Model>;

/** PNG file bytes (RGBA, 8-bit) of an image. */
export declare function imageToPng(image: Image, options?: PngOptions): Uint8Array;
