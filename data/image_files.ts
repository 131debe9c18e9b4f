/**
 * Reading a user's image files: PNG (fast-png) and JPEG (jpeg-js), both pure JavaScript, so
 * decoding needs no native code and runs the same everywhere Deno does. Every format comes out as
 * one shape: 8-bit-scaled values [height, width, channels] with channels 1 (gray) or 3 (RGB), the
 * alpha already composited, and the file's own channel count kept for callers that want to refuse
 * a mismatch. Every error names the file.
 */
import { convertIndexedToRgb, decode as decodePngFile, type DecodedPng, hasPngSignature } from "fast-png";
import jpeg from "jpeg-js";
import { DataFileError, reason } from "./data_files.ts";

/** A decoded picture: values 0..255 (floats: 16-bit PNGs keep their precision), row-major HWC. */
export interface Picture {
  readonly width: number;
  readonly height: number;
  /** 1 (gray) or 3 (RGB), after dropping alpha. */
  readonly channels: 1 | 3;
  /** [height, width, channels] */
  readonly values: Float32Array;
  /** What the file stored: "gray", "gray+alpha", "rgb", "rgba", "palette" (PNG) or a JPEG's components. */
  readonly stored: string;
}

/** Alpha is composited over this background (0..255): black, the -1 of the model's range. */
const BACKGROUND = 0;

/** The picture in `file`, by content (PNG or JPEG signature), not by extension. */
export function readPicture(file: string): Picture {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch (e) {
    throw new DataFileError(file, `cannot read the image (${reason(e)})`);
  }
  return decodePicture(bytes, file);
}

/** `bytes` decoded; `file` only names the source in errors. */
export function decodePicture(bytes: Uint8Array, file: string): Picture {
  if (bytes.length === 0) throw new DataFileError(file, "the image file is empty (0 bytes)");
  if (hasPngSignature(bytes)) return fromPng(bytes, file);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return fromJpeg(bytes, file);
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new DataFileError(
    file,
    `not a PNG or JPEG image (it starts with bytes ${head}; PNG starts 89 50 4e 47, JPEG ff d8)`,
  );
}

function fromPng(bytes: Uint8Array, file: string): Picture {
  let png: DecodedPng;
  try {
    png = decodePngFile(bytes);
  } catch (e) {
    throw new DataFileError(file, `undecodable PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  checkSize(width, height, file);
  if (png.palette) {
    const rgb = convertIndexedToRgb(png);
    const channels = rgb.length / (width * height);
    return composite(width, height, rgb, channels, 255, "palette", file);
  }
  const stored = ["", "gray", "gray+alpha", "rgb", "rgba"][png.channels] ?? `${png.channels} channels`;
  const samples = png.depth < 8 ? unpackBits(png.data as Uint8Array, width, height, png.depth) : png.data;
  return composite(width, height, samples, png.channels, 2 ** png.depth - 1, stored, file);
}

/** Gray PNGs of 1, 2 or 4 bits: rows are packed, each row starting on a byte. */
function unpackBits(packed: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)]!;
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function fromJpeg(bytes: Uint8Array, file: string): Picture {
  const components = jpegComponents(bytes, file);
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  } catch (e) {
    throw new DataFileError(file, `undecodable JPEG (${(e as Error).message})`);
  }
  const { width, height, data } = decoded;
  checkSize(width, height, file);
  // jpeg-js gives RGB for every JPEG; a one-component (gray) file has R = G = B, so keep one.
  const picture = composite(width, height, data, 3, 255, components === 1 ? "gray" : "rgb", file);
  return components === 1 ? toGray(picture) : picture;
}

/**
 * The number of colour components in the JPEG's frame header (1 gray, 3 YCbCr, 4 CMYK): jpeg-js
 * converts every file to RGB and does not say what it read.
 */
export function jpegComponents(bytes: Uint8Array, file: string): number {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) throw new DataFileError(file, `undecodable JPEG (no marker at byte ${at})`);
    const marker = bytes[at + 1]!;
    if (marker === 0xff) { // fill byte
      at++;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { // markers without a length
      at += 2;
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    const frame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (frame) {
      const count = bytes[at + 9];
      if (count === undefined) break;
      return count;
    }
    if (marker === 0xda) break; // scan data before any frame header
    at += 2 + length;
  }
  throw new DataFileError(file, "undecodable JPEG (no frame header: the file is truncated or not a JPEG)");
}

function checkSize(width: number, height: number, file: string): void {
  if (!(width >= 1 && height >= 1)) throw new DataFileError(file, `image of ${width}x${height} pixels`);
}

/**
 * `samples` [H, W, channels] with channels 1..4 (a trailing alpha for 2 and 4) to a Picture: alpha
 * composited over BACKGROUND, values rescaled from 0..max to 0..255.
 */
function composite(
  width: number,
  height: number,
  samples: ArrayLike<number>,
  channels: number,
  max: number,
  stored: string,
  file: string,
): Picture {
  if (channels < 1 || channels > 4 || !Number.isInteger(channels)) {
    throw new DataFileError(file, `${channels} channels per pixel; expected 1 to 4`);
  }
  const alpha = channels === 2 || channels === 4;
  const colour = (alpha ? channels - 1 : channels) as 1 | 3;
  const n = width * height;
  if (samples.length < n * channels) {
    throw new DataFileError(file, `holds ${samples.length} samples, expected ${n * channels}`);
  }
  const values = new Float32Array(n * colour);
  const scale = 255 / max;
  for (let i = 0; i < n; i++) {
    const a = alpha ? samples[i * channels + colour]! / max : 1;
    for (let c = 0; c < colour; c++) {
      const v = samples[i * channels + c]! * scale;
      values[i * colour + c] = a * v + (1 - a) * BACKGROUND;
    }
  }
  return { width, height, channels: colour, values, stored };
}

/** Rec. 601 luma weights, the usual RGB -> gray (what PIL's convert("L") uses). */
const LUMA = [0.299, 0.587, 0.114] as const;

/** The picture with `channels` channels: gray copied into R, G and B, or RGB to luma. */
export function withChannels(p: Picture, channels: 1 | 3): Picture {
  if (p.channels === channels) return p;
  if (channels === 1) return toGray(p);
  const values = new Float32Array(p.width * p.height * 3);
  for (let i = 0; i < p.width * p.height; i++) values.fill(p.values[i]!, 3 * i, 3 * i + 3);
  return { ...p, channels: 3, values };
}

function toGray(p: Picture): Picture {
  if (p.channels === 1) return p;
  const values = new Float32Array(p.width * p.height);
  for (let i = 0; i < values.length; i++) {
    values[i] = LUMA[0] * p.values[3 * i]! + LUMA[1] * p.values[3 * i + 1]! + LUMA[2] * p.values[3 * i + 2]!;
  }
  return { ...p, channels: 1, values };
}
