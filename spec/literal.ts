/**
 * Tensor literals: `tensor([1, 2])`, `tensor([[1, 2], [3, 4]], "f32")`. The rank comes from the
 * nesting and, without a dtype, the dtype from the values (all integers: i32; any fraction: f32;
 * booleans: bool), both at the type level for literal values and when traced. The IR has no
 * array-valued constant, so a literal is built from `const` runs (equal neighbours share one)
 * concatenated and reshaped: meant for small tables (masks, weights, test inputs); a large fixed
 * table belongs in `constant()`, a parameter that is loaded once.
 */
import { type DType, fmtShape, node } from "../compiler/ir/mod.ts";
import { fail, Tensor } from "./tensor.ts";
import type { Inc } from "./rank.ts";

/** A (nested) array of numbers or booleans. */
export type NestedValues = number | boolean | readonly NestedValues[];

/** The rank of a nested array type: one per level of nesting. */
export type LiteralRank<T> = T extends readonly (infer E)[] ? Inc<LiteralRank<E>> : 0;

type Leaf<T> = T extends readonly (infer E)[] ? Leaf<E> : T;
type Fraction = `${string}.${string}` | `${string}e-${string}`;

/**
 * The dtype a literal's values give: bool for booleans, i32 for integer literals, f32 once one
 * literal has a fraction; values only known at run time (`number`) may be either.
 */
export type LiteralDType<T> = [Leaf<T>] extends [boolean] ? "bool"
  : number extends Leaf<T> ? "f32" | "i32"
  : [Extract<`${Leaf<T> & number}`, Fraction>] extends [never] ? "i32"
  : "f32";

/** Above this many elements a literal is refused: it would be a long chain of IR nodes. */
export const MAX_LITERAL_ELEMENTS = 4096;

const I32_MIN = -(2 ** 31), I32_MAX = 2 ** 31 - 1, U32_MAX = 2 ** 32 - 1;

/**
 * A tensor of the given values; the shape is read off the nesting (every row the same length).
 * Two signatures, so an omitted dtype is the values' (never one a declared result type asks for).
 */
export function tensor<const T extends NestedValues>(values: T): Tensor<LiteralDType<T>, LiteralRank<T>>;
export function tensor<const T extends NestedValues, D extends DType>(
  values: T,
  dtype: D,
): Tensor<D, LiteralRank<T>>;
export function tensor(values: NestedValues, dtype?: DType): Tensor {
  const shape = shapeOf(values, []);
  const flat = ([values] as unknown[]).flat(Infinity) as (number | boolean)[];
  if (flat.length === 0) {
    fail("tensor", `a tensor literal needs at least one element, got shape ${fmtShape(shape)}`);
  }
  if (flat.length > MAX_LITERAL_ELEMENTS) {
    fail(
      "tensor",
      `${flat.length} elements is over the literal limit of ${MAX_LITERAL_ELEMENTS}; ` +
        `declare a table that large with constant(shape, values) instead`,
    );
  }
  const chosen: DType = dtype ?? inferDType(flat);
  const numbers = flat.map((v, i) => checked(v, i, shape, chosen));
  // Runs of equal neighbours become one const each: [0, 0, 0, 1] is two nodes, not four.
  const runs: Tensor[] = [];
  for (let i = 0; i < numbers.length;) {
    let j = i + 1;
    while (j < numbers.length && Object.is(numbers[j], numbers[i])) j++;
    runs.push(new Tensor(node("const", [], { value: numbers[i]!, shape: [j - i], dtype: chosen })));
    i = j;
  }
  const line = runs.length === 1
    ? runs[0]!
    : new Tensor(node("concat", runs.map((r) => r.node), { axis: 0 }));
  return shape.length === 1 ? line : new Tensor(node("reshape", [line.node], { shape }));
}

/** The shape of a nested array; a ragged one is refused, naming the first row that differs. */
function shapeOf(v: NestedValues, at: number[]): number[] {
  if (!Array.isArray(v)) return [];
  const rows = v as readonly NestedValues[];
  const inner = rows.length ? shapeOf(rows[0]!, [...at, 0]) : [];
  rows.forEach((row, i) => {
    const s = shapeOf(row, [...at, i]);
    if (s.length !== inner.length || s.some((d, k) => d !== inner[k])) {
      const where = (idx: number[]) => `values${idx.map((k) => `[${k}]`).join("")}`;
      fail(
        "tensor",
        `ragged literal: ${where([...at, i])} has shape ${fmtShape(s)} but ${where([...at, 0])} has ` +
          `${fmtShape(inner)}; every row must have the same length`,
      );
    }
  });
  return [rows.length, ...inner];
}

function inferDType(flat: readonly (number | boolean)[]): DType {
  if (flat.every((v) => typeof v === "boolean")) return "bool";
  if (flat.some((v) => typeof v === "boolean")) {
    fail("tensor", "a literal mixes booleans and numbers; give one kind, or a dtype");
  }
  return flat.every((v) => Number.isInteger(v) && (v as number) >= I32_MIN && (v as number) <= I32_MAX)
    ? "i32"
    : "f32";
}

/** The element as the const node stores it, or a refusal naming its index and the dtype. */
function checked(v: number | boolean, i: number, shape: readonly number[], dtype: DType): number {
  const at = `element ${i} (${indexOf(i, shape)})`;
  if (typeof v === "boolean") {
    if (dtype !== "bool") fail("tensor", `${at} is ${v}, a boolean in a ${dtype} literal`);
    return v ? 1 : 0;
  }
  if (typeof v !== "number") {
    fail("tensor", `${at} is ${String(v)}; expected a number for ${dtype}`);
  }
  const integral = Number.isInteger(v);
  if (dtype === "bool" && v !== 0 && v !== 1) {
    fail("tensor", `${at} is ${v}; a bool literal takes true/false or 0/1`);
  }
  if (dtype === "i32" && (!integral || v < I32_MIN || v > I32_MAX)) {
    fail(
      "tensor",
      `${at} is ${v}, not an i32 (an integer in [${I32_MIN}, ${I32_MAX}]); pass "f32" for fractions`,
    );
  }
  if (dtype === "u32" && (!integral || v < 0 || v > U32_MAX)) {
    fail("tensor", `${at} is ${v}, not a u32 (an integer in [0, ${U32_MAX}])`);
  }
  return v;
}

/** `[1, 0]` for flat index 2 of shape [2, 2]. */
function indexOf(i: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    idx.unshift(i % shape[k]!);
    i = Math.floor(i / shape[k]!);
  }
  return `[${idx.join(", ")}]`;
}
