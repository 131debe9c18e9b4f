/**
 * Pictures a run writes next to its checkpoints: loss curves as standalone SVG, and grids of gray
 * images (samples) as RGBA pixels for `encodePng`.
 */

export interface Series {
  readonly name: string;
  /** [step, value]; non-finite values (and non-positive ones on a log axis) are skipped. */
  readonly points: readonly (readonly [number, number])[];
}

export interface LossCurveOptions {
  readonly width?: number;
  readonly height?: number;
  readonly logY?: boolean;
  readonly title?: string;
  readonly xLabel?: string;
  readonly yLabel?: string;
}

/** Tableau 10: distinct, and readable on white. */
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"];
const MARGIN = { left: 68, right: 20, top: 36, bottom: 48 };

export function lossCurveSvg(series: readonly Series[], opts: LossCurveOptions = {}): string {
  const { width = 720, height = 440, logY = false, title = "", xLabel = "step", yLabel = "loss" } = opts;
  const kept = series.map((s) => ({
    name: s.name,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)),
  }));
  const all = kept.flatMap((s) => s.points);
  const x = linearAxis(all.map((p) => p[0]));
  const y = logY ? logAxis(all.map((p) => p[1])) : linearAxis(all.map((p) => p[1]));
  const [left, right, top, bottom] = [MARGIN.left, width - MARGIN.right, MARGIN.top, height - MARGIN.bottom];
  const px = (v: number) => left + ((v - x.lo) / (x.hi - x.lo)) * (right - left);
  const py = (v: number) => bottom - ((y.map(v) - y.lo) / (y.hi - y.lo)) * (bottom - top);
  const r = (v: number) => Math.round(v * 10) / 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  for (const t of x.ticks) {
    out.push(
      `<line x1="${r(px(t))}" y1="${top}" x2="${r(px(t))}" y2="${bottom}" stroke="#e6e6e6"/>`,
      `<text x="${r(px(t))}" y="${bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  for (const t of y.ticks) {
    out.push(
      `<line x1="${left}" y1="${r(py(t))}" x2="${right}" y2="${r(py(t))}" stroke="#e6e6e6"/>`,
      `<text x="${left - 6}" y="${r(py(t)) + 4}" text-anchor="end">${formatTick(t)}</text>`,
    );
  }
  out.push(
    `<path d="M${left},${top}V${bottom}H${right}" fill="none" stroke="#333"/>`,
    `<text x="${(left + right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(16 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle">` +
      `${escapeXml(yLabel)}${logY ? " (log)" : ""}</text>`,
  );
  if (title) {
    out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`);
  }
  kept.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = thin(s.points.map(([a, b]) => [r(px(a)), r(py(b))] as const)).map(([a, b]) => `${a},${b}`)
      .join(" ");
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`);
    const ly = top + 14 + 18 * i;
    if (i === 0) {
      out.push(
        `<rect x="${right - 156}" y="${top + 2}" width="152" height="${18 * kept.length + 4}" ` +
          `fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
      );
    }
    out.push(
      `<line x1="${right - 150}" y1="${ly - 4}" x2="${right - 126}" y2="${
        ly - 4
      }" stroke="${color}" stroke-width="3"/>`,
      `<text x="${right - 120}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  if (all.length === 0) {
    out.push(`<text x="${(left + right) / 2}" y="${(top + bottom) / 2}" text-anchor="middle">no data</text>`);
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

interface Axis {
  /** Domain in axis units (log10 of the value on a log axis). */
  readonly lo: number;
  readonly hi: number;
  /** Tick values (data units). */
  readonly ticks: readonly number[];
  readonly map: (v: number) => number;
}

/** A domain widened to round numbers, with 1-2-5 ticks (about six). */
function linearAxis(values: readonly number[]): Axis {
  let [lo, hi] = values.length ? extent(values) : [0, 1];
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const raw = (hi - lo) / 6;
  const decade = 10 ** Math.floor(Math.log10(raw));
  const step = decade * ([1, 2, 5].find((m) => m * decade >= raw) ?? 10);
  [lo, hi] = [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
  const ticks: number[] = [];
  for (let i = 0; lo + i * step <= hi + step / 2; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return { lo, hi, ticks, map: (v) => v };
}

/** Log10 domain padded a little; ticks at 1, 2, (3,) 5 x 10^k, or only powers of ten over many decades. */
function logAxis(values: readonly number[]): Axis {
  let [lo, hi] = values.length ? extent(values).map(Math.log10) as [number, number] : [-1, 1];
  if (hi - lo < 0.3) [lo, hi] = [(lo + hi) / 2 - 0.15, (lo + hi) / 2 + 0.15];
  const pad = (hi - lo) * 0.04;
  [lo, hi] = [lo - pad, hi + pad];
  const mantissas = hi - lo > 4 ? [1] : hi - lo > 1 ? [1, 2, 5] : [1, 2, 3, 5];
  const ticks: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const m of mantissas) {
      const v = Number((m * 10 ** k).toPrecision(12));
      if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(v);
    }
  }
  return { lo, hi, ticks, map: Math.log10 };
}

/** Min and max without spreading (runs have more points than a call may take arguments). */
function extent(values: readonly number[]): [number, number] {
  let [lo, hi] = [Infinity, -Infinity];
  for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return [lo, hi];
}

/**
 * Keeps the first, lowest, highest and last point of each pixel column, so a long run draws the
 * same envelope with a few thousand points instead of every step.
 */
function thin(points: readonly (readonly [number, number])[]): (readonly [number, number])[] {
  const out: (readonly [number, number])[] = [];
  for (let i = 0; i < points.length;) {
    let j = i;
    let [low, high] = [i, i];
    while (j + 1 < points.length && Math.round(points[j + 1]![0]) === Math.round(points[i]![0])) {
      j++;
      if (points[j]![1] < points[low]![1]) low = j;
      if (points[j]![1] > points[high]![1]) high = j;
    }
    for (const k of [...new Set([i, low, high, j])].sort((a, b) => a - b)) out.push(points[k]!);
    i = j + 1;
  }
  return out;
}

function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential().replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(6)));
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface GridOptions {
  /** Pixels between images and around the grid. Default 2. */
  readonly separator?: number;
  readonly separatorColor?: readonly [number, number, number];
  /** How pixel values map to gray: [-1, 1] (`signed`) or [0, 1] (`unit`). Default: signed if any is < 0. */
  readonly range?: "signed" | "unit";
}

/** Non-finite pixels (a diverged sample) are drawn magenta so they cannot pass for black. */
const NAN_COLOR = [255, 0, 255] as const;

/** Tiles gray images ([h, w] each) `cols` to a row; empty cells of the last row stay separator-colored. */
export function imageGrid(
  images: readonly Float32Array[],
  w: number,
  h: number,
  cols: number,
  opts: GridOptions = {},
): { rgba: Uint8Array; width: number; height: number } {
  const { separator: sep = 2, separatorColor = [128, 128, 128] } = opts;
  if (images.length === 0) throw new Error("imageGrid: no images");
  if (![w, h, cols].every((n) => Number.isInteger(n) && n > 0) || !Number.isInteger(sep) || sep < 0) {
    throw new Error(
      `imageGrid: sizes must be positive integers, got w=${w} h=${h} cols=${cols} separator=${sep}`,
    );
  }
  images.forEach((img, i) => {
    if (img.length !== w * h) {
      throw new Error(`imageGrid: image ${i} has ${img.length} values, ${w}x${h} needs ${w * h}`);
    }
  });
  const signed = opts.range ? opts.range === "signed" : images.some((img) => img.some((v) => v < 0));
  const shownCols = Math.min(cols, images.length);
  const rows = Math.ceil(images.length / cols);
  const width = shownCols * w + (shownCols + 1) * sep;
  const height = rows * h + (rows + 1) * sep;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) rgba.set([...separatorColor, 255], i * 4);
  images.forEach((img, i) => {
    const [x0, y0] = [sep + (i % cols) * (w + sep), sep + Math.floor(i / cols) * (h + sep)];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = img[y * w + x]!;
        const at = ((y0 + y) * width + x0 + x) * 4;
        if (!Number.isFinite(v)) rgba.set([...NAN_COLOR, 255], at);
        else {
          const g = Math.round(Math.min(1, Math.max(0, signed ? (v + 1) / 2 : v)) * 255);
          rgba.set([g, g, g, 255], at);
        }
      }
    }
  });
  return { rgba, width, height };
}
