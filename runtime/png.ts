/**
 * PNG encode and decode for the pictures a run writes (samples, grids) and reads (prompts, tests):
 * 8-bit gray, gray+alpha, RGB and RGBA, not interlaced. zlib comes from fflate; chunk framing,
 * CRC-32 and the five scanline filters are here. Decoding trusts nothing and names the file.
 */
import { unzlibSync, zlibSync } from "fflate";
import { ImageError } from "./file_errors.ts";

export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  /** [height, width, 4] row-major, 8 bits per channel. */
  readonly rgba: Uint8Array;
}

/** PNG scanline filters: none, sub, up, average, paeth. `adaptive` picks per row (the usual heuristic). */
export type PngFilter = 0 | 1 | 2 | 3 | 4 | "adaptive";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
/** Channels per color type; type 3 (palette) is not supported. */
const CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 4: 2, 6: 4 };
const KNOWN_CRITICAL = new Set(["IHDR", "PLTE", "IDAT", "IEND"]);
/** Refuse to allocate more than this for decoded pixels (a corrupt or hostile header). */
const MAX_PIXELS = 1 << 28;

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO 3309, as PNG and zip use it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodePng(
  rgba: Uint8Array,
  width: number,
  height: number,
  filter: PngFilter = "adaptive",
): Uint8Array {
  checkSize(width, height, rgba.length, 4, "encodePng");
  return encodeRaw(rgba, width, height, 6, filter);
}

/** An RGB PNG (colour type 2) of `rgb` ([height, width, 3] bytes). */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  checkSize(width, height, rgb.length, 3, "encodeRgbPng");
  return encodeRaw(rgb, width, height, 2, "adaptive");
}

/** A grayscale PNG of `values` ([height, width], in [0, 1]; clamped, NaN as 0). */
export function encodeGrayPng(values: Float32Array, width: number, height: number): Uint8Array {
  checkSize(width, height, values.length, 1, "encodeGrayPng");
  const gray = Uint8Array.from(values, (v) => Math.round(Math.min(1, Math.max(0, v || 0)) * 255));
  return encodeRaw(gray, width, height, 0, "adaptive");
}

function checkSize(width: number, height: number, length: number, channels: number, what: string): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new ImageError(`${what}: size ${width}x${height} must be positive integers`);
  }
  if (length !== width * height * channels) {
    throw new ImageError(`${what}: ${length} values for ${width}x${height} with ${channels} channel(s)`);
  }
}

function encodeRaw(pixels: Uint8Array, width: number, height: number, colorType: number, filter: PngFilter) {
  const bpp = CHANNELS[colorType]!;
  const stride = width * bpp;
  const filtered = new Uint8Array(height * (stride + 1));
  const zero = new Uint8Array(stride);
  const candidate = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const above = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : zero;
    const out = filtered.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    let best = filter === "adaptive" ? 0 : filter;
    if (filter === "adaptive") {
      let bestCost = Infinity;
      for (const f of [0, 1, 2, 3, 4] as const) {
        applyFilter(f, row, above, bpp, candidate);
        let cost = 0;
        for (const b of candidate) cost += b < 128 ? b : 256 - b;
        if (cost < bestCost) [best, bestCost] = [f, cost];
      }
    }
    filtered[y * (stride + 1)] = best;
    applyFilter(best, row, above, bpp, out);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, colorType, 0, 0, 0], 8);
  return concat([
    Uint8Array.from(SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", zlibSync(filtered, { level: 6 })),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** The byte predicted from left `a`, up `b` and up-left `c` under each filter. */
const PREDICT: readonly ((a: number, b: number, c: number) => number)[] = [
  () => 0,
  (a) => a,
  (_, b) => b,
  (a, b) => (a + b) >> 1,
  paeth,
];

function applyFilter(f: number, row: Uint8Array, above: Uint8Array, bpp: number, out: Uint8Array): void {
  const predict = PREDICT[f]!;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp]! : 0;
    const c = i >= bpp ? above[i - bpp]! : 0;
    out[i] = (row[i]! - predict(a, above[i]!, c)) & 255;
  }
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Decodes an 8-bit, non-interlaced PNG of color type 0, 2, 4 or 6 into RGBA. */
export function decodePng(bytes: Uint8Array, source: string): DecodedImage {
  const fail = (problem: string): never => {
    throw new ImageError(`${source}: ${problem}`);
  };
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) fail("not a PNG file (no PNG signature)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let header: { width: number; height: number; channels: number } | undefined;
  let ended = false;
  for (let pos = 8; pos < bytes.length && !ended;) {
    if (pos + 8 > bytes.length) fail(`truncated: the file ends inside the chunk header at byte ${pos}`);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + length > bytes.length) {
      fail(
        `truncated: chunk ${type} at byte ${pos} needs ${12 + length} bytes, the file has ${
          bytes.length - pos
        }`,
      );
    }
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const stored = view.getUint32(pos + 8 + length);
    const computed = crc32(bytes.subarray(pos + 4, pos + 8 + length));
    if (stored !== computed) {
      fail(`chunk ${type} at byte ${pos} has a bad CRC (stored ${hex(stored)}, computed ${hex(computed)})`);
    }
    if (!header && type !== "IHDR") fail(`the first chunk is ${type}, expected IHDR`);
    if (type === "IHDR") header = parseHeader(data, fail);
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") ended = true;
    else if (type.charCodeAt(0) < 97 && !KNOWN_CRITICAL.has(type)) fail(`unknown critical chunk ${type}`);
    pos += 12 + length;
  }
  if (!header) fail("truncated: the file ends before the IHDR chunk");
  if (!ended) fail("truncated: the file ends before the IEND chunk");
  if (idat.length === 0) fail("no IDAT chunk (no image data)");
  const { width, height, channels } = header!;
  let raw: Uint8Array;
  try {
    raw = unzlibSync(concat(idat));
  } catch (e) {
    return fail(`image data does not inflate (${(e as Error).message})`);
  }
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) {
    fail(
      `image data inflates to ${raw.length} bytes, ${height * (stride + 1)} expected for ${width}x${height}`,
    );
  }
  const pixels = unfilter(raw, height, stride, channels, fail);
  return { width, height, rgba: toRgba(pixels, width * height, channels) };
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

function parseHeader(data: Uint8Array, fail: (p: string) => never) {
  if (data.length !== 13) fail(`IHDR is ${data.length} bytes, expected 13`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const [width, height] = [view.getUint32(0), view.getUint32(4)];
  const [depth, colorType, compression, filter, interlace] = data.subarray(8, 13);
  if (width === 0 || height === 0) fail(`size ${width}x${height} is empty`);
  if (width * height > MAX_PIXELS) fail(`size ${width}x${height} exceeds ${MAX_PIXELS} pixels`);
  if (colorType === 3) fail("palette images (color type 3) are not supported; use gray, RGB or RGBA");
  const channels = CHANNELS[colorType!];
  if (channels === undefined) fail(`color type ${colorType} is not a PNG color type`);
  if (depth !== 8) fail(`bit depth ${depth} is not supported (only 8-bit images)`);
  if (compression !== 0 || filter !== 0) {
    fail(`compression ${compression} / filter method ${filter} must be 0`);
  }
  if (interlace !== 0) fail(`interlace method ${interlace} is not supported (only non-interlaced images)`);
  return { width, height, channels: channels! };
}

function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number, fail: (p: string) => never) {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const predict = PREDICT[f] ?? fail(`row ${y} has filter type ${f}, expected 0 to 4`);
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[row + i - bpp]! : 0;
      const b = y > 0 ? out[row - stride + i]! : 0;
      const c = i >= bpp && y > 0 ? out[row - stride + i - bpp]! : 0;
      out[row + i] = (src[i]! + predict(a, b, c)) & 255;
    }
  }
  return out;
}

function toRgba(pixels: Uint8Array, count: number, channels: number): Uint8Array {
  if (channels === 4) return pixels;
  const rgba = new Uint8Array(count * 4);
  for (let i = 0; i < count; i++) {
    const p = pixels.subarray(i * channels, (i + 1) * channels);
    const [r, g, b] = channels >= 3 ? [p[0]!, p[1]!, p[2]!] : [p[0]!, p[0]!, p[0]!];
    const alpha = channels === 2 ? p[1]! : channels === 4 ? p[3]! : 255;
    rgba.set([r, g, b, alpha], i * 4);
  }
  return rgba;
}
