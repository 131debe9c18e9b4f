import type { ConvGeometry } from "../compiler/ir/conv.ts";
import type { Kernel, KernelBinding } from "./kernel.ts";
import { matmulKernel, type MatmulShape, type MatmulVariant } from "./matmul.ts";

/**
 * The sizes of one NHWC convolution, as the shape rule derives them (compiler/ir/conv.ts): x [n, h, w,
 * cin], weights [kh, kw, cg, cout] (cg = cin / groups, og = cout / groups), output [n, ho, wo, cout].
 */
export type ConvShape = ConvGeometry;

/** How the conv kernel reads x and the weights and writes its output (WGSL expression builders). */
export interface ConvIO {
  readonly declarations: string;
  readonly bindings: readonly KernelBinding[];
  /** f32 WGSL expression of x[b, y, x, c]; called only with every index in range (padding is handled here). */
  readonly loadX: (b: string, y: string, x: string, c: string) => string;
  /** f32 WGSL expression of the weight at flat index kk * cout + o, kk = (p * kw + q) * cg + c. */
  readonly loadW: (kk: string, o: string) => string;
  /** A WGSL statement storing f32 `value` at output flat index `flat` ((b, i, j, o) row-major). */
  readonly store: (flat: string, value: string) => string;
}

/**
 * The GEMM a convolution is, per group g: out[m, o] = sum over kk of window[m, kk] * weight[kk, o],
 * with m = (b, i, j) an output pixel and kk = (p, q, c) a tap and input channel.
 */
export function convGemmShape(s: ConvShape): MatmulShape {
  return { batch: s.groups, m: s.n * s.ho * s.wo, n: s.og, k: s.kh * s.kw * s.cg };
}

const u = (v: number) => `${v}u`;

/**
 * A convolution as an implicit GEMM: the matmul kernel of `variant` (register tiles on CPU adapters,
 * workgroup-shared tiles on GPUs: the variant chosen for `convGemmShape`) reading its A operand as
 * the input window in place. `conv_window(g, m, kk)` decodes the output pixel and the tap, and reads
 * zero outside the image (the padding): no column matrix and no padded copy of x is ever stored.
 * Bias, activation and residual epilogues come in through `io.store`.
 */
export function convKernel(name: string, s: ConvShape, io: ConvIO, variant: MatmulVariant): Kernel {
  const shape = convGemmShape(s);
  const window = `fn conv_window(g: u32, m: u32, kk: u32) -> f32 {
  let j = m % ${u(s.wo)};
  let bi = m / ${u(s.wo)};
  let i = bi % ${u(s.ho)};
  let b = bi / ${u(s.ho)};
  let c = kk % ${u(s.cg)};
  let pq = kk / ${u(s.cg)};
  let q = pq % ${u(s.kw)};
  let p = pq / ${u(s.kw)};
  // y, x below zero wrap to large u32 values, so one comparison per axis checks both edges.
  let y = i * ${u(s.stride)} + p - ${u(s.padding)};
  let x = j * ${u(s.stride)} + q - ${u(s.padding)};
  if (y >= ${u(s.h)} || x >= ${u(s.w)}) { return 0.0; }
  return ${io.loadX("b", "y", "x", `g * ${u(s.cg)} + c`)};
}`;
  const k = matmulKernel(name, shape, {
    declarations: [io.declarations, window].filter(Boolean).join("\n\n"),
    bindings: io.bindings,
    loadA: (g, m, kk) => `conv_window(${g}, ${m}, ${kk})`,
    loadB: (g, kk, o) => io.loadW(kk, `${g} * ${u(s.og)} + ${o}`),
    store: (g, m, o, v) => io.store(`${m} * ${u(s.cout)} + ${g} * ${u(s.og)} + ${o}`, v),
  }, variant);
  const doc = `conv2d [${s.n}, ${s.h}, ${s.w}, ${s.cin}] * [${s.kh}, ${s.kw}, ${s.cg}, ${s.cout}] ` +
    `stride ${s.stride} padding ${s.padding} groups ${s.groups} -> [${s.n}, ${s.ho}, ${s.wo}, ${s.cout}], ` +
    `implicit GEMM: ${k.doc}`;
  const bytes = 4 * (s.n * s.h * s.w * s.cin + s.kh * s.kw * s.cg * s.cout + s.n * s.ho * s.wo * s.cout);
  return { ...k, doc, ops: ["conv2d"], bytes };
}
