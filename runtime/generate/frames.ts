/**
 * Images in the model's own frame (spec/data.ts `ImageView` "frame"): what a run trained on the
 * user's pictures draws, written as it is (size x size, RGB for 3 channels, gray for 1), and the
 * pictures a user supplies, prepared exactly as the training data prepared theirs
 * (data/image_files.ts decoding, data/image_resize.ts centered square crop + area resize).
 */
import { decodePicture } from "../../data/image_files.ts";
import { withChannels } from "../../data/image_files.ts";
import { modelImage } from "../../data/image_resize.ts";
import { encodeGrayPng, encodeRgbPng } from "../png.ts";

/** A tiled grid of frames: [height, width, channels] bytes, channels 1 (gray) or 3 (RGB). */
export interface FrameGrid {
  readonly pixels: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
}

/** Separator between tiles, as runtime/plots.ts `imageGrid` draws it. */
const SEPARATOR = { width: 2, value: 128 } as const;

/** [-1, 1] to 0..255 (clamped); non-finite (a diverged sample) as 255 in `bad` channels, else 0. */
function byte(v: number, bad: boolean): number {
  if (!Number.isFinite(v)) return bad ? 255 : 0;
  return Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
}

/**
 * Model images (C * size * size channel planes in [-1, 1]) tiled `cols` to a row on a gray
 * separator. 3 channels stay RGB (a non-finite pixel magenta); 1 stays gray (non-finite white). Any
 * other count is shown as the mean of its channels in gray: a latent whose run declares it
 * (`DataSource.latents`) is decoded to its VAE's pixels before it gets here (data/latent_codec.ts), so
 * only latents nothing can decode are shown this way.
 */
export function frameGrid(
  images: readonly Float32Array[],
  size: number,
  channels: number,
  cols: number,
): FrameGrid {
  if (images.length === 0) throw new Error("frameGrid: no images");
  if (![size, channels, cols].every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(
      `frameGrid: size, channels and cols must be positive integers, got ${size}, ${channels}, ${cols}`,
    );
  }
  images.forEach((img, i) => {
    if (img.length !== channels * size * size) {
      throw new Error(`frameGrid: image ${i} has ${img.length} values, not ${channels}x${size}x${size}`);
    }
  });
  const out = channels === 3 ? 3 : 1;
  const sep = SEPARATOR.width;
  const shown = Math.min(cols, images.length), rows = Math.ceil(images.length / cols);
  const width = shown * size + (shown + 1) * sep, height = rows * size + (rows + 1) * sep;
  const pixels = new Uint8Array(width * height * out).fill(SEPARATOR.value);
  const plane = size * size;
  images.forEach((img, n) => {
    const x0 = sep + (n % cols) * (size + sep), y0 = sep + Math.floor(n / cols) * (size + sep);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const at = ((y0 + y) * width + x0 + x) * out;
        if (out === 3) {
          for (let c = 0; c < 3; c++) pixels[at + c] = byte(img[c * plane + y * size + x]!, c !== 1);
          continue;
        }
        let v = 0;
        for (let c = 0; c < channels; c++) v += img[c * plane + y * size + x]!;
        pixels[at] = byte(v / channels, true);
      }
    }
  });
  return { pixels, width, height, channels: out };
}

/** `frameGrid` as a PNG: colour type 2 (RGB) for 3 channels, 0 (gray) otherwise. */
export function frameGridPng(
  images: readonly Float32Array[],
  size: number,
  channels: number,
  cols: number,
): Uint8Array {
  const g = frameGrid(images, size, channels, cols);
  if (g.channels === 3) return encodeRgbPng(g.pixels, g.width, g.height);
  return encodeGrayPng(Float32Array.from(g.pixels, (b) => b / 255), g.width, g.height);
}

/**
 * A PNG or JPEG file's bytes as a model image (C * size * size in [-1, 1]), prepared as the user's
 * training pictures are (data/own_images.ts): decoded (alpha over black), brought to the model's
 * channel count, the centered square area-resized to size x size. `source` names the file in errors.
 */
export function frameFromPicture(
  bytes: Uint8Array,
  source: string,
  size: number,
  channels: number,
): Float32Array {
  if (channels !== 1 && channels !== 3) {
    throw new Error(
      `${source}: the model's images have ${channels} channels; pictures can fill 1 (gray) or 3 (RGB)`,
    );
  }
  return modelImage(withChannels(decodePicture(bytes, source), channels), size);
}
