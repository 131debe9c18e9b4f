import type { ConvGeometry } from "../compiler/ir/conv.ts";
import type { Kernel, KernelBinding } from "./kernel.ts";
import { matmulKernel, type MatmulShape, type MatmulVariant } from "./matmul.ts";
import { entryHeader, matmulResult, P, range, tileGrid, tileStores } from "./matmul_common.ts";

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
  /**
   * The same weight by its axes, w[p, q, c, o]: the direct kernel's form. A view of the weights (the
   * flipped, channel-swapped kernel of dx, dy as the kernel of dw) then decodes p and q, which are
   * fixed for a tap, apart from c and o, and the shader compiler hoists that work out of the channel
   * loop; from a flat kk every load divided it back out.
   */
  readonly loadWAt: (p: string, q: string, c: string, o: string) => string;
  /** A WGSL statement storing f32 `value` at output flat index `flat` ((b, i, j, o) row-major). */
  readonly store: (flat: string, value: string) => string;
  /** Ops of the fused epilogue per stored element (0 or absent: a plain store); sets the store form. */
  readonly storeOps?: number;
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
 * The conv kernel for `variant`: on GPUs (shared tiles) the implicit GEMM over the matmul kernel; on
 * CPU adapters (register and vector tiles) the direct register kernel, whose inner loop has no
 * index arithmetic (see directConvKernel). Bias, activation and residual epilogues come in through
 * `io.store` either way.
 */
export function convKernel(name: string, s: ConvShape, io: ConvIO, variant: MatmulVariant): Kernel {
  const k = variant.kind === "shared"
    ? implicitGemmConv(name, s, io, variant)
    : directConvKernel(name, s, io, cpuConvTiles(convGemmShape(s), s.cg));
  const doc = `conv2d [${s.n}, ${s.h}, ${s.w}, ${s.cin}] * [${s.kh}, ${s.kw}, ${s.cg}, ${s.cout}] ` +
    `stride ${s.stride} padding ${s.padding} groups ${s.groups} -> [${s.n}, ${s.ho}, ${s.wo}, ${s.cout}], ` +
    `${variant.kind === "shared" ? "implicit GEMM" : "direct"}: ${k.doc}`;
  const bytes = 4 * (s.n * s.h * s.w * s.cin + s.kh * s.kw * s.cg * s.cout + s.n * s.ho * s.wo * s.cout);
  return { ...k, doc, ops: ["conv2d"], bytes };
}

/**
 * A convolution as an implicit GEMM: the matmul kernel of `variant` (register tiles on CPU adapters,
 * workgroup-shared tiles on GPUs: the variant chosen for `convGemmShape`) reading its A operand as
 * the input window in place. `conv_window(g, m, kk)` decodes the output pixel and the tap, and reads
 * zero outside the image (the padding): no column matrix and no padded copy of x is ever stored.
 * Bias, activation and residual epilogues come in through `io.store`.
 */
function implicitGemmConv(name: string, s: ConvShape, io: ConvIO, variant: MatmulVariant): Kernel {
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
  return matmulKernel(name, shape, {
    declarations: [io.declarations, window].filter(Boolean).join("\n\n"),
    bindings: io.bindings,
    loadA: (g, m, kk) => `conv_window(${g}, ${m}, ${kk})`,
    loadB: (g, kk, o) => io.loadW(kk, `${g} * ${u(s.og)} + ${o}`),
    store: (g, m, o, v) => io.store(`${m} * ${u(s.cout)} + ${g} * ${u(s.og)} + ${o}`, v),
  }, variant);
}

/**
 * Below this many input channels per group (a stem: 1 or 3), a tap is a few FMAs per output and the
 * per-tap edge tests and the fused epilogue weigh more than the loads the estimate counts; there a
 * thread holds at most FEW_CHANNELS_TILE accumulators. Measured on lavapipe (bench conv cases, same
 * run, forward): the 16x16 1->32 stem 8.8 ms with 16x8 tiles, 6.2 with 8x4; the 32x32 3->32 stem
 * 44.9 and 31.8; with 32 channels (16x16 32->32) 16x8 stayed the faster step (164 ms against 259).
 */
const FEW_CHANNELS = 8;
const FEW_CHANNELS_TILE = 32;

/** Register tiles of the direct kernel: threads x outputs per thread on each axis. */
export interface ConvTiles {
  readonly tm: number;
  readonly tn: number;
  readonly wgX: number;
  readonly wgY: number;
}

const CPU_WORKERS = 8;

/**
 * The direct kernel's tiles on a CPU adapter, by the register matmul's estimate (kernels/matmul.ts):
 * workgroups shared among the workers, each costing its whole block (clamped rows and columns too)
 * times the loads per FMA. The matmul's own tiles are 64 or 128 columns wide, which a conv's 32
 * output channels would half waste; these go down to 8, with at least 8 threads (one SIMD row).
 * `cg`: input channels per group (see FEW_CHANNELS).
 */
export function cpuConvTiles({ batch, m, n }: MatmulShape, cg: number): ConvTiles {
  const most = cg < FEW_CHANNELS ? FEW_CHANNELS_TILE : 128;
  let best: ConvTiles | undefined;
  let bestCost = Infinity;
  for (const tm of [16, 8, 4, 2]) {
    for (const tn of [16, 8, 4]) {
      if (tm * tn > most) continue;
      for (const wgX of [8, 4, 2, 1]) {
        for (const wgY of [8, 4, 2, 1]) {
          if (wgX * wgY < 8 || wgX * wgY > 64) continue;
          const [rows, cols] = [tm * wgY, tn * wgX];
          const blocks = batch * Math.ceil(m / rows) * Math.ceil(n / cols);
          const cost = Math.ceil(blocks / CPU_WORKERS) * rows * cols * (tm + tn) / (tm * tn);
          if (cost < bestCost) [best, bestCost] = [{ tm, tn, wgX, wgY }, cost];
        }
      }
    }
  }
  return best!;
}

/**
 * The input channel loop is unrolled by this much; the remainder runs as straight-line steps. 1: copies
 * here grew the shader lavapipe compiles fourfold (the first bench ratios, since replaced, were measured at 4;
 * the present ones in docs/image_path.md at 1).
 */
const UNROLL = 1;

/**
 * The direct conv kernel for CPU adapters (lavapipe), on the GEMM's tiling: thread (x, y) of a
 * wgX x wgY workgroup owns output pixels m_r = base + y + r * wgY (r < tm) and output channels
 * o_t = base + x + t * wgX (t < tn), accumulating in registers like the register matmul. Each pixel's
 * (b, i, j) is decoded once per thread, each tap's input row and column and its edge test once per
 * tap and pixel, so the innermost loop over the input channels is loads and FMAs only; the implicit
 * GEMM decodes (b, i, j, p, q, c) with six divisions for every A value instead. Measured on lavapipe
 * with `deno task bench --only conv`: see ARCHITECTURE.md.
 */
function directConvKernel(
  name: string,
  s: ConvShape,
  io: ConvIO,
  v: ConvTiles,
): Kernel {
  const shape = convGemmShape(s);
  const { m, n } = shape;
  const rows = v.tm * v.wgY;
  const cols = v.tn * v.wgX;
  const g = tileGrid(shape, rows, cols);
  const rs = range(v.tm);
  const ts = range(v.tn);
  const acc = (r: number, t: number) => `${P}acc_${r}_${t}`;
  const gi = `${P}batch`;
  const cMain = s.cg - (s.cg % UNROLL);
  // One input channel: tm window values (zero off the image), tn weights, tm x tn FMAs.
  const channel = (c: string) => {
    const a = rs.map((r) =>
      `let ${P}a${r} = select(0.0, ${
        io.loadX(`${P}b${r}`, `${P}yc${r}`, `${P}xc${r}`, `${P}cbase + ${c}`)
      }, ${P}in${r});`
    );
    const w = ts.map((t) => `let ${P}w${t} = ${io.loadWAt(`${P}p`, `${P}q`, c, `${P}o${t}`)};`);
    const fmas = rs.flatMap((r) => ts.map((t) => `${acc(r, t)} = fma(${P}a${r}, ${P}w${t}, ${acc(r, t)});`));
    return [...a, ...w, ...fmas].map((x) => `        ${x}`).join("\n");
  };
  const unrolled = range(UNROLL).map((t) =>
    `      {\n        let ${P}cc = ${P}c + ${u(t)};\n${channel(`${P}cc`)}\n      }`
  );
  const channelLoop = [
    cMain === 0
      ? ""
      : `      for (var ${P}c = 0u; ${P}c < ${u(cMain)}; ${P}c += ${u(UNROLL)}) {\n${
        unrolled.join("\n")
      }\n      }`,
    ...range(s.cg - cMain).map((t) => `      {\n${channel(u(cMain + t))}\n      }`),
  ].filter(Boolean).join("\n");
  // The stores as the matmul's (tileStores): unrolled, or with a costly epilogue one site in a loop
  // over the tile, since lavapipe inlines a fused epilogue into every store site and JIT-compiles it
  // at the first dispatch (tm x tn copies made the CPU conformance cases' conv kernels compile for
  // minutes). Below that line the loop is what costs: its accumulators go through a local array
  // indexed at run time (the U-Net stem with a GELU epilogue: 3.0 ms looped, 1.67 ms unrolled).
  const stores = tileStores(
    {
      store: (g, i, j, value) => io.store(`${i} * ${u(s.cout)} + ${g} * ${u(s.og)} + ${j}`, value),
      storeOps: io.storeOps ?? 0,
    },
    { m, n },
    rs.map((r) => r * v.wgY),
    ts.map((t) => t * v.wgX),
    acc,
  );
  const wgsl = `${io.declarations}

${entryHeader([v.wgX, v.wgY], g)}
  let ${P}row_base = ${P}tile_row * ${u(rows)} + ${P}lid.y;
  let ${P}col_base = ${P}tile_col * ${u(cols)} + ${P}lid.x;
  let ${P}cbase = ${gi} * ${u(s.cg)};
${
    rs.map((r) =>
      `  let ${P}m${r} = min(${P}row_base + ${u(r * v.wgY)}, ${u(m - 1)});
  let ${P}j${r} = ${P}m${r} % ${u(s.wo)};
  let ${P}i${r} = (${P}m${r} / ${u(s.wo)}) % ${u(s.ho)};
  let ${P}b${r} = ${P}m${r} / ${u(s.wo * s.ho)};`
    ).join("\n")
  }
${
    ts.map((t) => `  let ${P}o${t} = ${gi} * ${u(s.og)} + min(${P}col_base + ${u(t * v.wgX)}, ${u(n - 1)});`)
      .join("\n")
  }
${rs.flatMap((r) => ts.map((t) => `  var ${acc(r, t)} = 0.0;`)).join("\n")}
  for (var ${P}p = 0u; ${P}p < ${u(s.kh)}; ${P}p++) {
    for (var ${P}q = 0u; ${P}q < ${u(s.kw)}; ${P}q++) {
${
    rs.map((r) =>
      // Rows and columns above the top or left edge wrap to large u32 values: one test per axis.
      `      let ${P}y${r} = ${P}i${r} * ${u(s.stride)} + ${P}p - ${u(s.padding)};
      let ${P}x${r} = ${P}j${r} * ${u(s.stride)} + ${P}q - ${u(s.padding)};
      let ${P}in${r} = ${P}y${r} < ${u(s.h)} && ${P}x${r} < ${u(s.w)};
      let ${P}yc${r} = select(0u, ${P}y${r}, ${P}in${r});
      let ${P}xc${r} = select(0u, ${P}x${r}, ${P}in${r});`
    ).join("\n")
  }
${channelLoop}
    }
  }
${stores}
}
`;
  const empty = {
    declarations: "",
    bindings: io.bindings,
    loadA: () => "",
    loadB: () => "",
    store: () => "",
  };
  return matmulResult(
    name,
    shape,
    empty,
    g,
    [v.wgX, v.wgY, 1],
    wgsl,
    `register ${v.tm}x${v.tn} wg ${v.wgX}x${v.wgY} tiles`,
  );
}
