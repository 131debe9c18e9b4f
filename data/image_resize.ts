/**
 * A decoded picture to a model image: the centered square crop (the aspect ratio is kept, the
 * longer side's edges are cut), area-resampled to size x size, channels first, values in [-1, 1].
 *
 * Area resampling (each output pixel is the mean of the source area it covers, partly covered
 * source pixels weighted by the part) because user images are mostly larger than the model's
 * 16..64 pixels: it is the anti-aliased shrink (bilinear sampling of a 4x shrink reads 4 of every 16
 * pixels and aliases), it is exact for whole factors (a 2x shrink is the mean of 2x2 blocks) and it
 * keeps the mean brightness. Enlarging a small image with it repeats pixels, blending only where an
 * output pixel straddles two source pixels.
 */
import type { Picture } from "./image_files.ts";

/** C*size*size values in [-1, 1] (channel planes, each row-major), from `p`'s centered square. */
export function modelImage(p: Picture, size: number): Float32Array {
  if (!Number.isInteger(size) || size < 1) throw new Error(`modelImage: size must be >= 1, got ${size}`);
  const side = Math.min(p.width, p.height);
  const x0 = Math.floor((p.width - side) / 2);
  const y0 = Math.floor((p.height - side) / 2);
  const ys = areaWeights(side, size);
  const xs = areaWeights(side, size);
  const C = p.channels;
  const out = new Float32Array(C * size * size);
  const norm = (size / side) ** 2; // 1 / (source pixels per output pixel)
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (const [sy, wy] of ys[oy]!) {
          const row = (y0 + sy) * p.width + x0;
          for (const [sx, wx] of xs[ox]!) sum += wy * wx * p.values[(row + sx) * C + c]!;
        }
        out[(c * size + oy) * size + ox] = (sum * norm) / 127.5 - 1;
      }
    }
  }
  return out;
}

/**
 * For each of `to` output pixels along an axis of `from` source pixels: the source pixels it covers
 * and by how much (in source pixels; the weights of one output pixel add up to from / to).
 */
export function areaWeights(from: number, to: number): (readonly [number, number])[][] {
  const step = from / to;
  return Array.from({ length: to }, (_, o) => {
    const [lo, hi] = [o * step, (o + 1) * step];
    const cover: [number, number][] = [];
    for (let s = Math.floor(lo); s < Math.min(from, Math.ceil(hi)); s++) {
      const w = Math.min(hi, s + 1) - Math.max(lo, s);
      if (w > 1e-12) cover.push([s, w]);
    }
    return cover;
  });
}
