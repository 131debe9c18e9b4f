/**
 * Reading a model's caption back into attributes, leniently: the words are taken in order, a shape
 * word closes a shape (with the size and colour words since the previous one), "left of" / "right of"
 * / "above" / "below" between shapes is the relation, and "top" / "bottom" with "left" / "right" is a
 * quadrant. Anything else is ignored, so a caption that is half right scores half right.
 */
import type { ReadScene, ReadShape } from "./shapes_checker.ts";
import {
  COLOUR_NAMES,
  type Quadrant,
  type Relation,
  SHAPE_KINDS,
  SHAPE_SIZES,
  type ShapeColour,
  type ShapeKind,
  type ShapeSize,
} from "./shapes_scene.ts";

const isIn = <T extends string>(xs: readonly T[], w: string | undefined): w is T =>
  w !== undefined && (xs as readonly string[]).includes(w);

export function readCaption(text: string): ReadScene {
  const words = text.toLowerCase().split(/[^a-z]+/).filter((w) => w.length > 0);
  const shapes: ReadShape[] = [];
  let colour: ShapeColour | undefined, size: ShapeSize | undefined;
  let relation: Relation | undefined, vertical: string | undefined, horizontal: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (isIn(COLOUR_NAMES, w)) colour = w;
    else if (isIn(SHAPE_SIZES, w)) size = w;
    else if (isIn(SHAPE_KINDS, w)) {
      shapes.push({ kind: w as ShapeKind, ...(colour ? { colour } : {}), ...(size ? { size } : {}) });
      [colour, size] = [undefined, undefined];
    } else if (w === "above" || w === "below") relation ??= w;
    else if ((w === "left" || w === "right") && words[i + 1] === "of") relation ??= `${w} of`;
    else if (w === "top" || w === "bottom") vertical ??= w;
    else if (w === "left" || w === "right") horizontal ??= w;
  }
  const quadrant = vertical && horizontal ? `${vertical} ${horizontal}` as Quadrant : undefined;
  const where = shapes.length >= 2 ? relation : quadrant;
  return { shapes, ...(where ? { where } : {}) };
}
