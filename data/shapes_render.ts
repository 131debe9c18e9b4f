/**
 * Drawing scenes: a pixel belongs to a shape when its centre (x + 0.5, y + 0.5) is inside it, so edges
 * are hard and the pixel checker (shapes_checker.ts) can draw the very same masks to compare against.
 * Images are [3, S, S] planes (R, G, B) in [-1, 1] on a black (-1) background, as the model sees them.
 */
import { type PlacedShape, type Scene, SHAPE_COLOURS, type ShapeKind, sidePixels } from "./shapes_scene.ts";

/**
 * Whether point (x, y) is inside a `kind` of side `side` centred at (cx, cy). Every kind fills the
 * side x side box around the centre: a disc, the box, an upward triangle (apex top centre, base the
 * bottom edge) and a plus whose arms are a third of the side wide.
 */
export function insideShape(
  kind: ShapeKind,
  cx: number,
  cy: number,
  side: number,
  x: number,
  y: number,
): boolean {
  const [dx, dy, r] = [x - cx, y - cy, side / 2];
  switch (kind) {
    case "circle":
      return dx * dx + dy * dy <= r * r;
    case "square":
      return Math.abs(dx) <= r && Math.abs(dy) <= r;
    case "triangle":
      return dy <= r && dy >= -r && Math.abs(dx) <= (dy + r) / 2;
    case "cross": {
      const arm = side / 6;
      return (Math.abs(dx) <= r && Math.abs(dy) <= arm) || (Math.abs(dy) <= r && Math.abs(dx) <= arm);
    }
  }
}

/** Pixels of the shape in an S x S image, as a 0/1 mask [S * S]. */
export function shapeMask(kind: ShapeKind, cx: number, cy: number, side: number, S: number): Uint8Array {
  const mask = new Uint8Array(S * S);
  const [x0, x1] = [
    Math.max(0, Math.floor(cx - side / 2) - 1),
    Math.min(S - 1, Math.ceil(cx + side / 2) + 1),
  ];
  const [y0, y1] = [
    Math.max(0, Math.floor(cy - side / 2) - 1),
    Math.min(S - 1, Math.ceil(cy + side / 2) + 1),
  ];
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) if (insideShape(kind, cx, cy, side, x + 0.5, y + 0.5)) mask[y * S + x] = 1;
  }
  return mask;
}

/** The scene as a model image: [3, S, S] in [-1, 1]. */
export function renderScene(scene: Scene, S: number): Float32Array {
  const out = new Float32Array(3 * S * S).fill(-1);
  for (const shape of scene.shapes) paint(out, shape, S);
  return out;
}

function paint(out: Float32Array, shape: PlacedShape, S: number): void {
  const mask = shapeMask(shape.kind, shape.cx, shape.cy, sidePixels(shape.size, S), S);
  const rgb = SHAPE_COLOURS[shape.colour];
  for (let i = 0; i < S * S; i++) {
    if (mask[i]) { for (let c = 0; c < 3; c++) out[c * S * S + i] = rgb[c]!; }
  }
}
