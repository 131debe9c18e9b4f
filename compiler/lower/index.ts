import { scaleIndex, sumIndex } from "../../kernels/wgsl.ts";

/**
 * A position in a tensor during code generation: held as a flat row-major index, as per-axis
 * indices, or both, converting lazily. Elementwise chains and reshapes pass the flat form through,
 * so the common case needs no division at all.
 */
export class Ix {
  private constructor(
    readonly shape: readonly number[],
    private flatExpr: string | undefined,
    private axesExpr: readonly string[] | undefined,
  ) {}

  static flat(shape: readonly number[], flat: string): Ix {
    return new Ix(shape, flat, undefined);
  }
  static axes(shape: readonly number[], axes: readonly string[]): Ix {
    if (axes.length !== shape.length) {
      throw new Error(`index rank ${axes.length} != shape rank ${shape.length}`);
    }
    return new Ix(shape, undefined, axes);
  }

  /** A textual key for memoizing reads at this position. */
  key(): string {
    return this.flatExpr ?? this.axesExpr!.join(",");
  }

  flat(): string {
    if (this.flatExpr === undefined) {
      const strides = rowMajorStrides(this.shape);
      this.flatExpr = sumIndex(
        this.axesExpr!.map((a, i) => scaleIndex(a, this.shape[i] === 1 ? 0 : strides[i]!)),
      );
    }
    return this.flatExpr;
  }

  /**
   * The same position with its expressions passed through `bind` (FunctionWriter binds long ones
   * to a `let`). Views derive their source's index from their own, so without this a chain of
   * views repeats each level's text in the next: a padded, dilated cotangent grew to 38 KB lines.
   */
  bound(bind: (expr: string) => string): Ix {
    return new Ix(this.shape, this.flatExpr && bind(this.flatExpr), this.axesExpr?.map(bind));
  }

  axes(): readonly string[] {
    if (this.axesExpr === undefined) {
      const strides = rowMajorStrides(this.shape);
      const flat = this.flatExpr!;
      this.axesExpr = this.shape.map((d, i) => {
        if (d === 1) return "0u";
        const div = strides[i] === 1 ? flat : `(${flat} / ${strides[i]}u)`;
        return i === 0 ? div : `(${div} % ${d}u)`;
      });
    }
    return this.axesExpr;
  }
}

export function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
