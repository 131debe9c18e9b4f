/**
 * Where a spec's training data comes from. A spec may declare `data: (config, dims) => DataSource`;
 * the training CLI then needs nothing else to train it. Batches are pure functions of (seed, step),
 * so a resumed run sees exactly the batches an uninterrupted one would.
 */
export type Batch = Record<string, ArrayLike<number>>;

export interface DataSource {
  /** Inputs of the `loss` entry (all but `seed`) for training step `step`. */
  batch(step: number, seed: number): Batch;
  /** Held-out batch `index` (0 .. evalBatches - 1), the same every time. */
  evalBatch?(index: number): Batch;
  readonly evalBatches?: number;
  /** Tokens (positions) per batch, for the tokens/s progress figure. */
  readonly tokensPerBatch: number;
  /** One line for progress output: the data set and its size. */
  describe(): string;
  /** Present when the source can keep its dataset on the device and gather batches there. */
  readonly device?: DeviceData;
  /**
   * How `deno task sample`/`caption`/`generate` show and read this data's images. "digits": MNIST's
   * form (a 28x28 gray digit cut out of the padded frame; supplied PNGs inverted to light-on-dark and
   * fitted to 28x28), which the digit classifier and people comparing with MNIST expect. "frame"
   * (the default: nothing but MNIST can promise its pictures are digits): the model's own size x size
   * image, gray or RGB, and supplied pictures prepared as the user's training images are.
   */
  readonly imageView?: ImageView;
  /**
   * Present when the model's images are not pixels but a VAE's latents (data/shapes_latents.ts):
   * `sample`, `generate` and the generated module decode them with that run's `decode` entry, and
   * `caption` encodes supplied pictures with its `encode` entry.
   */
  readonly latents?: LatentImages;
}

/** Model images [channels, side, side] that are `(z - mean[c]) / std[c]` of a VAE run's latents z. */
export interface LatentImages {
  /** The VAE's run folder: its checkpoint and run.json (spec, config) give the decoder. */
  readonly vaeRun: string;
  readonly channels: number;
  readonly side: number;
  /** Per channel, what was subtracted from the VAE's latents and what they were divided by. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export type ImageView = "digits" | "frame";

/**
 * A data source that keeps its dataset on the device (`DataSource.device`): tables uploaded once,
 * and per step only the choice of rows (a few ints per image) crosses from the host; a gather kernel
 * assembles the big inputs in place (compiler/gather_inputs.ts, kernels/image_gather.ts). The batch
 * it makes must equal `batch(step, seed)` up to float rounding of the image arithmetic.
 */
export interface DeviceData {
  /** Uploaded once when training starts, by name: f32 values. */
  readonly tables: Readonly<Record<string, Float32Array<ArrayBuffer>>>;
  /** One per input assembled on the device. */
  readonly gathers: readonly ImageGather[];
  /**
   * Batch `step` without the gathered inputs, and for each gathered input its rows: i32 [R, 3] =
   * (table row, or -1 for an absent image: zeros; dx, dy: the shift in source pixels) per image.
   */
  indexedBatch(step: number, seed: number): {
    readonly batch: Batch;
    readonly rows: Readonly<Record<string, Int32Array>>;
  };
}

/**
 * How an image input [..., C, size, size] (R images in all) is made from a table of single-channel
 * `srcSide` x `srcSide` images: image r takes table row rows[r].row, moved by (dx, dy) with zeros
 * coming in, box-averaged `factor` x `factor` over the `side` x `side` grid that starts `crop` source
 * pixels in, placed `pad` pixels into a `size` frame of `background`, each value `scale * mean +
 * bias`, copied into every channel. data/mnist_captions.ts `digitImage` is the host twin.
 */
export interface ImageGather {
  /** The loss-entry input it fills. */
  readonly input: string;
  /** A key of `tables`. */
  readonly table: string;
  readonly srcSide: number;
  readonly size: number;
  readonly channels: number;
  readonly factor: number;
  readonly side: number;
  readonly crop: number;
  readonly pad: number;
  readonly background: number;
  readonly scale: number;
  readonly bias: number;
}
