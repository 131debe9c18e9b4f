import { bindingDecl, type KernelBinding } from "./kernel.ts";
import type { MatmulIO, MatmulShape } from "./matmul_common.ts";

/** A MatmulIO over its own buffers, with the byte size each buffer needs: enough to run it standalone. */
export interface SizedMatmulIO extends MatmulIO {
  readonly bufferBytes: Readonly<Record<string, number>>;
}

export interface PlainLayout {
  /** A is stored as [batch, k, m] and read transposed in place. */
  readonly transposeA?: boolean;
  /** B is stored as [batch, n, k] and read transposed in place. */
  readonly transposeB?: boolean;
}

/** Buffer names of the plain IO. */
export const PLAIN = { a: "mat_a", b: "mat_b", c: "mat_c" } as const;

/**
 * Three dense f32 buffers `mat_a`, `mat_b`, `mat_c` in row-major [batch, rows, cols] order, optionally
 * with A or B transposed. Used by tests, benchmarks and tuning: speed depends on shape, not on where
 * the operands live.
 */
export function plainMatmulIO(shape: MatmulShape, layout: PlainLayout = {}): SizedMatmulIO {
  const { batch, m, n, k } = shape;
  const bindings: KernelBinding[] = [
    { binding: 0, buffer: PLAIN.a, access: "read" },
    { binding: 1, buffer: PLAIN.b, access: "read" },
    { binding: 2, buffer: PLAIN.c, access: "read_write" },
  ];
  return {
    declarations: bindings.map(bindingDecl).join("\n"),
    loadA: (b, i, kk) =>
      layout.transposeA
        ? `${PLAIN.a}[${b} * ${m * k}u + ${kk} * ${m}u + ${i}]`
        : `${PLAIN.a}[${b} * ${m * k}u + ${i} * ${k}u + ${kk}]`,
    loadB: (b, kk, j) =>
      layout.transposeB
        ? `${PLAIN.b}[${b} * ${k * n}u + ${j} * ${k}u + ${kk}]`
        : `${PLAIN.b}[${b} * ${k * n}u + ${kk} * ${n}u + ${j}]`,
    store: (b, i, j, value) => `${PLAIN.c}[${b} * ${m * n}u + ${i} * ${n}u + ${j}] = ${value};`,
    bindings,
    bufferBytes: { [PLAIN.a]: 4 * batch * m * k, [PLAIN.b]: 4 * batch * k * n, [PLAIN.c]: 4 * batch * m * n },
  };
}
