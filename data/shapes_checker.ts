/**
 * The exact pixel checker: reads the shapes of a generated image back from its pixels, knowing how the
 * renderer draws them (shapes_render.ts), so nothing is trained and nothing is learned by heart.
 *
 *   foreground   a pixel whose brightest channel is above the midpoint 0 (background is -1, every
 *                colour has a channel at +1): diffusion noise of std 0.3 crosses it at 3 sigma
 *   shapes       4-connected foreground components of at least `minArea` pixels, largest first
 *                (specks of noise are smaller; two drawn shapes never touch)
 *   colour       the palette colour nearest the component's mean RGB
 *   size         the class whose side in pixels is nearest the bounding box's longer side
 *   kind         the kind whose mask, drawn at the box's centre and side (+-1 px, +-0.5 px), overlaps
 *                the component best (intersection over union)
 *   where        the quadrant of the box centre (one shape), or the relation of two centres
 */
import { shapeMask } from "./shapes_render.ts";
import {
  inverseRelation,
  type Quadrant,
  quadrantOf,
  type Relation,
  relationOf,
  RELATIONS,
  type SceneDescription,
  SHAPE_COLOURS,
  SHAPE_SIZES,
  type ShapeColour,
  type ShapeKind,
  type ShapeSize,
  sidePixels,
} from "./shapes_scene.ts";

/** A shape as read from pixels or from a caption; attributes missing where nothing could be read. */
export interface ReadShape {
  readonly colour?: ShapeColour;
  readonly kind?: ShapeKind;
  readonly size?: ShapeSize;
  /** Pixels only: the centre of the bounding box, its area and the best mask overlap. */
  readonly centre?: readonly [number, number];
  readonly area?: number;
  readonly fit?: number;
}

/** What was read: shapes in order (pixels: largest first; captions: as named) and, from a caption, where. */
export interface ReadScene {
  readonly shapes: readonly ReadShape[];
  readonly where?: Quadrant | Relation;
}

export interface CheckerSettings {
  readonly size: number;
  readonly colours: readonly ShapeColour[];
  readonly kinds: readonly ShapeKind[];
}

/** Components smaller than this are noise: an eighth of a small shape's box (8 px at 32). */
export function minArea(S: number): number {
  return Math.max(4, Math.ceil(sidePixels("small", S) ** 2 / 8));
}

/** The shapes in a model image ([3, S, S] in [-1, 1]), at most `most` of them (default 3), largest first. */
export function readImage(image: Float32Array, s: CheckerSettings, most = 3): ReadScene {
  const S = s.size;
  if (image.length !== 3 * S * S) {
    throw new Error(`readImage: ${image.length} values, a [3, ${S}, ${S}] image has ${3 * S * S}`);
  }
  const plane = S * S;
  const fg = new Uint8Array(plane);
  for (let i = 0; i < plane; i++) {
    fg[i] = Math.max(image[i]!, image[plane + i]!, image[2 * plane + i]!) > 0 ? 1 : 0;
  }
  const shapes = components(fg, S)
    .filter((c) => c.length >= minArea(S))
    .sort((a, b) => b.length - a.length)
    .slice(0, most)
    .map((pixels) => readComponent(image, pixels, s));
  return { shapes };
}

/** 4-connected components of a mask, as lists of pixel indices. */
function components(mask: Uint8Array, S: number): number[][] {
  const seen = new Uint8Array(mask.length);
  const out: number[][] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    const pixels = [start];
    seen[start] = 1;
    for (let k = 0; k < pixels.length; k++) {
      const i = pixels[k]!, x = i % S;
      for (const j of [x > 0 ? i - 1 : -1, x < S - 1 ? i + 1 : -1, i - S, i + S]) {
        if (j >= 0 && j < mask.length && mask[j] && !seen[j]) {
          seen[j] = 1;
          pixels.push(j);
        }
      }
    }
    out.push(pixels);
  }
  return out;
}

function readComponent(image: Float32Array, pixels: readonly number[], s: CheckerSettings): ReadShape {
  const S = s.size, plane = S * S;
  let [x0, x1, y0, y1] = [S, -1, S, -1];
  const mean = [0, 0, 0];
  for (const i of pixels) {
    const [x, y] = [i % S, Math.floor(i / S)];
    [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
    for (let c = 0; c < 3; c++) mean[c]! += image[c * plane + i]! / pixels.length;
  }
  const colour = nearest(s.colours, (c) => SHAPE_COLOURS[c].reduce((d, v, k) => d + (v - mean[k]!) ** 2, 0));
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const size = nearest(SHAPE_SIZES, (z) => Math.abs(sidePixels(z, S) - side));
  const centre = [(x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2] as const;
  const own = new Uint8Array(plane);
  for (const i of pixels) own[i] = 1;
  let best: { kind: ShapeKind; fit: number } = { kind: s.kinds[0]!, fit: -1 };
  for (const kind of s.kinds) {
    for (const d of [0, -1, 1]) {
      for (const ox of [0, -0.5, 0.5]) {
        for (const oy of [0, -0.5, 0.5]) {
          const fit = overlap(own, shapeMask(kind, centre[0] + ox, centre[1] + oy, side + d, S));
          if (fit > best.fit) best = { kind, fit };
        }
      }
    }
  }
  return { colour, kind: best.kind, size, centre, area: pixels.length, fit: best.fit };
}

/** Intersection over union of two 0/1 masks. */
function overlap(a: Uint8Array, b: Uint8Array): number {
  let both = 0, either = 0;
  for (let i = 0; i < a.length; i++) {
    both += a[i]! & b[i]!;
    either += a[i]! | b[i]!;
  }
  return either ? both / either : 0;
}

function nearest<T extends string>(items: readonly T[], distance: (t: T) => number): T {
  let best = items[0]!, bestD = Infinity;
  for (const t of items) {
    const d = distance(t);
    if (d < bestD) [best, bestD] = [t, d];
  }
  return best;
}

/** Per image: whether each attribute is right for every shape the description names. */
export interface AttributeScore {
  /** As many shapes read as named. */
  readonly count: boolean;
  readonly colour: boolean;
  readonly kind: boolean;
  readonly size: boolean;
  /** The quadrant (one shape) or the relation (two). */
  readonly where: boolean;
  /** Every one of the above. */
  readonly all: boolean;
}
export const SCORED_ATTRIBUTES = ["count", "colour", "kind", "size", "where", "all"] as const;

/**
 * Scores a reading against the description. The named shapes are matched to read ones by the
 * assignment that gets the most attributes right (so a scene read in the other order, "B right of A"
 * for "A left of B", scores the same). Where a read shape has a centre, where-ness is measured from the
 * centres; otherwise (a caption) it is the caption's own phrase, inverted for a swapped pair.
 */
export function scoreReading(truth: SceneDescription, read: ReadScene, S: number): AttributeScore {
  const named = truth.shapes;
  let best: (AttributeScore & { marks: number }) | undefined;
  for (const pick of assignments(named.length, read.shapes.length)) {
    const got = pick.map((j) => (j < 0 ? undefined : read.shapes[j]));
    const same = (k: "colour" | "kind" | "size") => named.every((n, i) => got[i]?.[k] === n[k]);
    const where = whereOf(pick, got, read, S) === truth.where;
    const marks = named.reduce((m, n, i) =>
      m + ["colour", "kind", "size"].filter((k) =>
        got[i]?.[k as "colour"] === n[k as "colour"]
      ).length, 0) + (where ? 1 : 0);
    if (best && marks <= best.marks) {
      continue;
    }
    const count = read.shapes.length === named.length;
    const [colour, kind, size] = [same("colour"), same("kind"), same("size")];
    best = { count, colour, kind, size, where, all: count && colour && kind && size && where, marks };
  }
  const { marks: _, ...score } = best!;
  return score;
}

/** Where the assigned shapes stand, from their centres or the caption's phrase. */
function whereOf(
  pick: readonly number[],
  got: readonly (ReadShape | undefined)[],
  read: ReadScene,
  S: number,
): Quadrant | Relation | undefined {
  if (got.some((g) => g === undefined)) return undefined;
  const centres = got.map((g) => g!.centre);
  if (centres.every((c) => c !== undefined)) {
    return centres.length === 1
      ? quadrantOf(centres[0]![0], centres[0]![1], S)
      : relationOf(centres[0]!, centres[1]!);
  }
  const w = read.where;
  if (w === undefined || pick.length !== 2) return pick.length === 1 ? w : undefined;
  if (!(RELATIONS as readonly string[]).includes(w)) return undefined;
  // The caption's phrase relates its first shape to its second.
  if (pick[0] === 0 && pick[1] === 1) return w;
  if (pick[0] === 1 && pick[1] === 0) return inverseRelation(w as Relation);
  return undefined;
}

/** Every injective map of `n` named shapes into `m` read ones (-1: none left to take), in a fixed order. */
function assignments(n: number, m: number): number[][] {
  const out: number[][] = [];
  const walk = (prefix: number[]) => {
    if (prefix.length === n) return void out.push(prefix);
    let any = false;
    for (let j = 0; j < m; j++) {
      if (!prefix.includes(j)) {
        any = true;
        walk([...prefix, j]);
      }
    }
    if (!any) walk([...prefix, -1]);
  };
  walk([]);
  return out;
}
