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
  /** Declare the buffers as vec4 arrays and offer vec4 operand loads (MatmulIO.vector). */
  readonly vector?: boolean;
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
  const indexA = (b: string, i: string, kk: string) =>
    layout.transposeA ? `${b} * ${m * k}u + ${kk} * ${m}u + ${i}` : `${b} * ${m * k}u + ${i} * ${k}u + ${kk}`;
  const indexB = (b: string, kk: string, j: string) =>
    layout.transposeB ? `${b} * ${k * n}u + ${j} * ${k}u + ${kk}` : `${b} * ${k * n}u + ${kk} * ${n}u + ${j}`;
  const indexC = (b: string, i: string, j: string) => `${b} * ${m * n}u + ${i} * ${n}u + ${j}`;
  // A vec4 array holds element e at [e / 4][e % 4].
  const element = (buffer: string, index: string) =>
    layout.vector ? `${buffer}[(${index}) >> 2u][(${index}) & 3u]` : `${buffer}[${index}]`;
  const bytes = (elements: number) => layout.vector ? 16 * Math.ceil(elements / 4) : 4 * elements;
  return {
    declarations: bindings.map((b) =>
      layout.vector
        ? `@group(0) @binding(${b.binding}) var<storage, ${b.access}> ${b.buffer}: array<vec4<f32>>;`
        : bindingDecl(b)
    ).join("\n"),
    loadA: (b, i, kk) => element(PLAIN.a, indexA(b, i, kk)),
    loadB: (b, kk, j) => element(PLAIN.b, indexB(b, kk, j)),
    store: (b, i, j, value) => `${element(PLAIN.c, indexC(b, i, j))} = ${value};`,
    ...(layout.vector
      ? {
        vector: {
          a: layout.transposeA ? "m" : "k",
          b: layout.transposeB ? "k" : "n",
          loadA4: (b: string, i: string, kk: string) => `${PLAIN.a}[(${indexA(b, i, kk)}) >> 2u]`,
          loadB4: (b: string, kk: string, j: string) => `${PLAIN.b}[(${indexB(b, kk, j)}) >> 2u]`,
        },
      }
      : {}),
    bindings,
    bufferBytes: {
      [PLAIN.a]: bytes(batch * m * k),
      [PLAIN.b]: bytes(batch * k * n),
      [PLAIN.c]: bytes(batch * m * n),
    },
  };
}
