/**
 * Model images ([C, H, W] in [-1, 1]) to RGBA pixels and back, and PNG bytes of pixels. One channel
 * is gray, three are RGB; other channel counts show their first channel as gray.
 */
import { encodePng } from "../png.ts";
import type { GeneratedImage, Image, PngOptions } from "./api.ts";

export function toGeneratedImage(values: Float32Array, size: number, channels: number): GeneratedImage {
  const pixels = size * size;
  if (values.length !== channels * pixels) {
    throw new Error(
      `an image of ${channels}x${size}x${size} has ${channels * pixels} values, got ${values.length}`,
    );
  }
  const rgba = new Uint8ClampedArray(pixels * 4);
  const byte = (v: number) => (Number.isFinite(v) ? Math.round(((v + 1) / 2) * 255) : 0);
  for (let i = 0; i < pixels; i++) {
    const rgb = channels === 3 ? [0, 1, 2] : [0, 0, 0];
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = byte(values[rgb[c]! * pixels + i]!);
    rgba[4 * i + 3] = 255;
  }
  return { width: size, height: size, rgba, values };
}

/** The model's values of an image: its own when generated, else from its pixels (alpha ignored). */
export function modelValues(image: Image, size: number, channels: number): Float32Array {
  const values = (image as Partial<GeneratedImage>).values;
  if (values instanceof Float32Array && values.length === channels * size * size) return values;
  if (image.width !== size || image.height !== size) {
    throw new RangeError(`the model reads ${size}x${size} images, got ${image.width}x${image.height}`);
  }
  if (image.rgba.length !== size * size * 4) {
    throw new RangeError(
      `a ${size}x${size} RGBA image has ${size * size * 4} bytes, got ${image.rgba.length}`,
    );
  }
  const pixels = size * size;
  const out = new Float32Array(channels * pixels);
  const unit = (b: number) => (b / 255) * 2 - 1;
  for (let i = 0; i < pixels; i++) {
    const [r, g, b] = [image.rgba[4 * i]!, image.rgba[4 * i + 1]!, image.rgba[4 * i + 2]!];
    if (channels === 3) [r, g, b].forEach((v, c) => (out[c * pixels + i] = unit(v)));
    else {
      const gray = unit(0.299 * r + 0.587 * g + 0.114 * b);
      for (let c = 0; c < channels; c++) out[c * pixels + i] = gray;
    }
  }
  return out;
}

export function imageToPng(image: Image, options: PngOptions = {}): Uint8Array {
  const scale = options.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1 || scale > 64) {
    throw new RangeError(`png scale must be an integer in 1..64, got ${scale}`);
  }
  const { width, height } = image;
  const source = new Uint8Array(image.rgba.buffer, image.rgba.byteOffset, image.rgba.byteLength);
  if (scale === 1) return encodePng(source, width, height);
  const [w, h] = [width * scale, height * scale];
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const from = (Math.floor(y / scale) * width + Math.floor(x / scale)) * 4;
      out.set(source.subarray(from, from + 4), (y * w + x) * 4);
    }
  }
  return encodePng(out, w, h);
}
