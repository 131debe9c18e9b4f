/**
 * Moving digit images between the model's frame and people's files: the model works on a padded
 * square in [-1, 1] (T1: MNIST 28x28 centered in 32x32, padding -1), people see 28x28 in [0, 1].
 * User PNGs of any size and color are brought to MNIST's form: white strokes on black, 28x28.
 */
import { decodePng } from "../png.ts";

/** MNIST's side: what people see and the digit classifier reads. */
export const DIGIT_SIDE = 28;

/**
 * Where a 28x28 digit sits in a `size` x `size` model image, as data/mnist_captions.ts `digitImage`
 * places it: f x f blocks averaged (f = ceil(28 / size)) over the centered `side * f` pixels
 * starting at `crop`, then centered at `pad` on a -1 background.
 */
export function digitPlacement(size: number): { f: number; side: number; crop: number; pad: number } {
  const f = Math.max(1, Math.ceil(DIGIT_SIDE / size));
  const side = Math.floor(DIGIT_SIDE / f);
  return { f, side, crop: Math.floor((DIGIT_SIDE - side * f) / 2), pad: Math.floor((size - side) / 2) };
}

/**
 * A model image (C * size * size in [-1, 1]) back to a 28x28 digit in [0, 1]: the channels averaged,
 * the padding cut off, blocks repeated back to full size (the margin a block factor leaves is black).
 * Non-finite values (a diverged sample) pass through, so they stay visible.
 */
export function digitFromModelImage(image: Float32Array, size: number, channels: number): Float32Array {
  if (image.length !== channels * size * size) {
    throw new Error(`digitFromModelImage: ${image.length} values for ${channels}x${size}x${size}`);
  }
  const { f, side, crop, pad } = digitPlacement(size);
  const out = new Float32Array(DIGIT_SIDE * DIGIT_SIDE);
  for (let y = 0; y < side * f; y++) {
    for (let x = 0; x < side * f; x++) {
      const at = (pad + Math.floor(y / f)) * size + pad + Math.floor(x / f);
      let v = 0;
      for (let c = 0; c < channels; c++) v += image[c * size * size + at]!;
      v = (v / channels + 1) / 2;
      out[(crop + y) * DIGIT_SIDE + crop + x] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : v;
    }
  }
  return out;
}

export interface PreparedDigit {
  /** [side * side] in [0, 1], white strokes on black. */
  readonly pixels: Float32Array;
  readonly width: number;
  readonly height: number;
  /** The picture was mostly light, so it was inverted to MNIST's light-on-dark. */
  readonly inverted: boolean;
}

/**
 * A PNG file's bytes as an MNIST-like digit: luminance (alpha composited over black), inverted when
 * the picture is mostly light (dark ink on paper), then scaled to fit `side` x `side` keeping its
 * aspect ratio (box filter; the margin is black). Throws ImageError for a file that is not a PNG.
 */
export function digitFromPng(bytes: Uint8Array, source: string, side = DIGIT_SIDE): PreparedDigit {
  const { width, height, rgba } = decodePng(bytes, source);
  const gray = new Float32Array(width * height);
  let sum = 0;
  for (let i = 0; i < gray.length; i++) {
    const [r, g, b, a] = [rgba[4 * i]!, rgba[4 * i + 1]!, rgba[4 * i + 2]!, rgba[4 * i + 3]!];
    gray[i] = ((0.299 * r + 0.587 * g + 0.114 * b) / 255) * (a / 255);
    sum += gray[i]!;
  }
  const inverted = sum / gray.length > 0.5;
  if (inverted) { for (let i = 0; i < gray.length; i++) gray[i] = 1 - gray[i]!; }
  return { pixels: fitSquare(gray, width, height, side), width, height, inverted };
}

/** Scales [h, w] to fit a side x side square (aspect kept, centered): each target pixel averages the
 * source area it covers, so downscaling does not alias and upscaling repeats pixels. */
export function fitSquare(gray: Float32Array, width: number, height: number, side: number): Float32Array {
  if (width === side && height === side) return gray.slice();
  const scale = side / Math.max(width, height);
  const [w, h] = [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
  const [ox, oy] = [Math.floor((side - w) / 2), Math.floor((side - h) / 2)];
  const out = new Float32Array(side * side);
  for (let y = 0; y < h; y++) {
    const [y0, y1] = [(y * height) / h, ((y + 1) * height) / h];
    for (let x = 0; x < w; x++) {
      const [x0, x1] = [(x * width) / w, ((x + 1) * width) / w];
      let [total, area] = [0, 0];
      for (let sy = Math.floor(y0); sy < Math.ceil(y1); sy++) {
        const wy = Math.min(y1, sy + 1) - Math.max(y0, sy);
        for (let sx = Math.floor(x0); sx < Math.ceil(x1); sx++) {
          const wx = Math.min(x1, sx + 1) - Math.max(x0, sx);
          total += gray[sy * width + sx]! * wx * wy;
          area += wx * wy;
        }
      }
      out[(y + oy) * side + x + ox] = total / area;
    }
  }
  return out;
}
