/**
 * Scenes of the shapes dataset: one or two flat shapes on a black square, each with a colour, a kind
 * and a size, placed in a quadrant (one shape) or left of / right of / above / below the other (two).
 * A scene is drawn from a seeded generator; its caption names every attribute, so it is the whole
 * description of the image:
 *
 *   "a small red circle at the top left"
 *   "a large blue square left of a small yellow cross"
 *
 * The held-out split is the scenes holding at least one held-out (colour, kind) pair; training scenes
 * hold none, so a held-out caption is a combination the model never saw, of words it saw.
 */
import { between, pick } from "./shapes_random.ts";

/** Colours as RGB in the model's [-1, 1] range: the corners of the cube, black being the background. */
export const SHAPE_COLOURS = {
  red: [1, -1, -1],
  green: [-1, 1, -1],
  blue: [-1, -1, 1],
  yellow: [1, 1, -1],
  cyan: [-1, 1, 1],
  magenta: [1, -1, 1],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ShapeColour = keyof typeof SHAPE_COLOURS;
export const COLOUR_NAMES = Object.keys(SHAPE_COLOURS) as ShapeColour[];

export const SHAPE_KINDS = ["circle", "square", "triangle", "cross"] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

export const SHAPE_SIZES = ["small", "large"] as const;
export type ShapeSize = (typeof SHAPE_SIZES)[number];

export const QUADRANTS = ["top left", "top right", "bottom left", "bottom right"] as const;
export type Quadrant = (typeof QUADRANTS)[number];

/** How the first-named shape stands to the second. */
export const RELATIONS = ["left of", "right of", "above", "below"] as const;
export type Relation = (typeof RELATIONS)[number];

/** What a caption says about one shape. */
export interface ShapeAttributes {
  readonly colour: ShapeColour;
  readonly kind: ShapeKind;
  readonly size: ShapeSize;
}

/** A shape as drawn: its attributes and its centre in pixels (x right, y down, pixel centres at +0.5). */
export interface PlacedShape extends ShapeAttributes {
  readonly cx: number;
  readonly cy: number;
}

/** One shape in a quadrant, or two in a relation (the first-named one to the second). */
export interface Scene {
  readonly shapes: readonly PlacedShape[];
  readonly where: Quadrant | Relation;
}

/** What a scene's caption says: its shapes' attributes and where they are, without coordinates. */
export interface SceneDescription {
  readonly shapes: readonly ShapeAttributes[];
  readonly where: Quadrant | Relation;
}

/** The choices a dataset draws scenes from. */
export interface SceneSettings {
  /** Side of the square image in pixels (>= 32). */
  readonly size: number;
  readonly colours: readonly ShapeColour[];
  readonly kinds: readonly ShapeKind[];
  /** (colour, kind) pairs that appear only in held-out scenes. */
  readonly heldOut: readonly (readonly [ShapeColour, ShapeKind])[];
  /** Fraction of scenes with two shapes. */
  readonly twoShapes: number;
}

/**
 * Four pairs, one per kind and no colour twice, so training still shows every colour and every kind
 * (each kind in five colours, each colour in three or four kinds).
 */
export const DEFAULT_HELD_OUT: readonly (readonly [ShapeColour, ShapeKind])[] = [
  ["red", "cross"],
  ["green", "triangle"],
  ["blue", "circle"],
  ["yellow", "square"],
];

/** Side in pixels of a shape of `size` in an image of side `imageSize`. */
export function sidePixels(size: ShapeSize, imageSize: number): number {
  return Math.round((size === "small" ? 0.25 : 0.4) * imageSize);
}

/** Pixels kept free between a shape and its cell's border (so two shapes never touch). */
const MARGIN = 1;

export function isHeldOut(s: SceneSettings, colour: ShapeColour, kind: ShapeKind): boolean {
  return s.heldOut.some(([c, k]) => c === colour && k === kind);
}

/** Checks settings once, naming the bad value. */
export function checkSceneSettings(s: SceneSettings, where: string): void {
  const fail = (what: string) => {
    throw new Error(`${where}: ${what}`);
  };
  if (!Number.isInteger(s.size) || s.size < 32) fail(`image size must be an integer >= 32, got ${s.size}`);
  for (const c of s.colours) {
    if (!(c in SHAPE_COLOURS)) fail(`unknown colour "${c}" (${COLOUR_NAMES.join(", ")})`);
  }
  for (const k of s.kinds) {
    if (!SHAPE_KINDS.includes(k)) fail(`unknown shape "${k}" (${SHAPE_KINDS.join(", ")})`);
  }
  if (s.colours.length === 0 || s.kinds.length === 0) fail("needs at least one colour and one shape");
  if (!(s.twoShapes >= 0 && s.twoShapes <= 1)) fail(`twoShapes must be in [0, 1], got ${s.twoShapes}`);
  for (const [c, k] of s.heldOut) {
    if (!s.colours.includes(c) || !s.kinds.includes(k)) {
      fail(`held-out pair "${c} ${k}" is not in the vocabulary`);
    }
  }
  if (s.heldOut.length >= s.colours.length * s.kinds.length) fail("every (colour, shape) pair is held out");
}

/** A scene of the training split (no held-out pair) or the held-out split (at least one). */
export function drawScene(random: () => number, s: SceneSettings, split: "train" | "held-out"): Scene {
  const count = random() < s.twoShapes ? 2 : 1;
  const attrs: ShapeAttributes[] = [];
  // In a held-out scene one shape (either, when there are two) carries a held-out pair.
  const forced = split === "held-out" ? Math.floor(random() * count) : -1;
  for (let i = 0; i < count; i++) {
    let colour: ShapeColour, kind: ShapeKind;
    if (i === forced) [colour, kind] = pick(random, s.heldOut);
    else {
      do {
        colour = pick(random, s.colours);
        kind = pick(random, s.kinds);
      } while (split === "train" && isHeldOut(s, colour, kind));
    }
    attrs.push({ colour, kind, size: pick(random, SHAPE_SIZES) });
  }
  if (count === 1) {
    const where = pick(random, QUADRANTS);
    return { shapes: [placeInQuadrant(random, attrs[0]!, where, s.size)], where };
  }
  const where = pick(random, RELATIONS);
  return { shapes: placePair(random, attrs[0]!, attrs[1]!, where, s.size), where };
}

/** A centre inside the quadrant's cell, `MARGIN` from its borders. */
function placeInQuadrant(random: () => number, a: ShapeAttributes, q: Quadrant, S: number): PlacedShape {
  const half = S / 2, r = sidePixels(a.size, S) / 2;
  const [x0, y0] = [q.endsWith("right") ? half : 0, q.startsWith("bottom") ? half : 0];
  const along = (lo: number) => between(random, lo + r + MARGIN, lo + half - r - MARGIN);
  return { ...a, cx: along(x0), cy: along(y0) };
}

/**
 * Two shapes in the two halves the relation names, their centres across the split at most S/16
 * either way of a common line: the axis of the relation always dominates the other (by 10 px at 32).
 */
function placePair(
  random: () => number,
  a: ShapeAttributes,
  b: ShapeAttributes,
  rel: Relation,
  S: number,
): PlacedShape[] {
  const half = S / 2, wobble = S / 16;
  const [ra, rb] = [sidePixels(a.size, S) / 2, sidePixels(b.size, S) / 2];
  const firstLow = rel === "left of" || rel === "above"; // the first-named shape in the lower-coordinate half
  const inHalf = (r: number, low: boolean) =>
    low ? between(random, r + MARGIN, half - r - MARGIN) : between(random, half + r + MARGIN, S - r - MARGIN);
  const [ma, mb] = [inHalf(ra, firstLow), inHalf(rb, !firstLow)];
  const reach = Math.max(ra, rb) + MARGIN + wobble;
  const line = between(random, reach, S - reach);
  const [ca, cb] = [line + between(random, -wobble, wobble), line + between(random, -wobble, wobble)];
  const horizontal = rel === "left of" || rel === "right of";
  return horizontal
    ? [{ ...a, cx: ma, cy: ca }, { ...b, cx: mb, cy: cb }]
    : [{ ...a, cx: ca, cy: ma }, { ...b, cx: cb, cy: mb }];
}

/** "a small red circle" */
export function shapePhrase(a: ShapeAttributes): string {
  return `a ${a.size} ${a.colour} ${a.kind}`;
}

/** The scene's caption: every attribute and where the shapes are. */
export function sceneCaption(d: SceneDescription): string {
  const [first, second] = d.shapes;
  if (!first) throw new Error("sceneCaption: a scene has at least one shape");
  return second
    ? `${shapePhrase(first)} ${d.where} ${shapePhrase(second)}`
    : `${shapePhrase(first)} at the ${d.where}`;
}

/** The description of a scene (what its caption says). */
export function describeScene(scene: Scene): SceneDescription {
  return {
    shapes: scene.shapes.map(({ colour, kind, size }) => ({ colour, kind, size })),
    where: scene.where,
  };
}

/** Bytes of the longest caption the settings can produce (a caption slot must hold them). */
export function longestCaption(s: Pick<SceneSettings, "colours" | "kinds">): number {
  const longest = <T extends string>(xs: readonly T[]) => xs.reduce((a, b) => (b.length > a.length ? b : a));
  const shape: ShapeAttributes = {
    colour: longest(s.colours),
    kind: longest(s.kinds),
    size: longest(SHAPE_SIZES),
  };
  const one = sceneCaption({ shapes: [shape], where: longest(QUADRANTS) }).length;
  const two = sceneCaption({ shapes: [shape, shape], where: longest(RELATIONS) }).length;
  return Math.max(one, two);
}

/** The relation of the second-named shape to the first, when the first stands `rel` to it. */
export function inverseRelation(rel: Relation): Relation {
  return ({ "left of": "right of", "right of": "left of", above: "below", below: "above" } as const)[rel];
}

/** The quadrant of a point in an image of side S (a point on a midline counts as right / bottom). */
export function quadrantOf(x: number, y: number, S: number): Quadrant {
  return `${y < S / 2 ? "top" : "bottom"} ${x < S / 2 ? "left" : "right"}` as Quadrant;
}

/** How a shape centred at a stands to one centred at b: along the axis where they are further apart. */
export function relationOf(a: readonly [number, number], b: readonly [number, number]): Relation {
  const [dx, dy] = [a[0] - b[0], a[1] - b[1]];
  if (Math.abs(dx) >= Math.abs(dy)) return dx < 0 ? "left of" : "right of";
  return dy < 0 ? "above" : "below";
}
