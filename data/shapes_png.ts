/**
 * Sample grids of RGB model images as PNG (runtime/plots.ts `imageGrid` is gray only): [3, S, S]
 * planes in [-1, 1] tiled `cols` to a row on a gray separator, non-finite pixels magenta.
 */
import { encodePng } from "../runtime/png.ts";

export function rgbGridPng(
  images: readonly Float32Array[],
  S: number,
  cols: number,
  separator = 2,
): Uint8Array {
  if (images.length === 0) throw new Error("rgbGridPng: no images");
  if (
    ![S, cols].every((n) => Number.isInteger(n) && n > 0) || !Number.isInteger(separator) || separator < 0
  ) {
    throw new Error(
      `rgbGridPng: sizes must be positive integers, got S=${S} cols=${cols} separator=${separator}`,
    );
  }
  images.forEach((img, i) => {
    if (img.length !== 3 * S * S) {
      throw new Error(`rgbGridPng: image ${i} has ${img.length} values, not 3x${S}x${S}`);
    }
  });
  const shown = Math.min(cols, images.length), rows = Math.ceil(images.length / cols);
  const width = shown * S + (shown + 1) * separator, height = rows * S + (rows + 1) * separator;
  const rgba = new Uint8Array(width * height * 4).fill(128);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  images.forEach((img, n) => {
    const x0 = separator + (n % cols) * (S + separator),
      y0 = separator + Math.floor(n / cols) * (S + separator);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const at = ((y0 + y) * width + x0 + x) * 4;
        for (let c = 0; c < 3; c++) {
          const v = img[c * S * S + y * S + x]!;
          rgba[at + c] = Number.isFinite(v)
            ? Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255)
            : c === 1
            ? 0
            : 255;
        }
      }
    }
  });
  return encodePng(rgba, width, height);
}
