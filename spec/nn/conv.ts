import { fmtShape, node } from "../../compiler/ir/mod.ts";
import { concat } from "../functions.ts";
import { fail, Tensor } from "../tensor.ts";

/** Stride, zero padding (the same on every side) and channel groups of a 2-D convolution. */
export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
}

/** The checked geometry of one convolution: what the im2col composite and the primitive share. */
export interface Conv2dGeometry {
  n: number;
  h: number;
  w: number;
  cin: number;
  kh: number;
  kw: number;
  cout: number;
  stride: number;
  padding: number;
  groups: number;
  ho: number;
  wo: number;
}

function positiveInt(op: string, name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) fail(op, `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/**
 * Checks x [N, H, W, Cin] (NHWC) against w [KH, KW, Cin/groups, Cout] and the options, and derives
 * the output size Ho = floor((H + 2 padding - KH) / stride) + 1 (the same for W).
 */
export function conv2dGeometry(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  opts: Conv2dOptions = {},
): Conv2dGeometry {
  const stride = positiveInt(op, "stride", opts.stride ?? 1, 1);
  const padding = positiveInt(op, "padding", opts.padding ?? 0, 0);
  const groups = positiveInt(op, "groups", opts.groups ?? 1, 1);
  if (xShape.length !== 4) fail(op, `x must be NHWC [N, H, W, Cin], got ${fmtShape(xShape)}`);
  if (wShape.length !== 4) {
    fail(op, `w must be [KH, KW, Cin/groups, Cout], got ${fmtShape(wShape)}`);
  }
  const [n, h, w, cin] = xShape as [number, number, number, number];
  const [kh, kw, cg, cout] = wShape as [number, number, number, number];
  if (cin % groups !== 0 || cout % groups !== 0) {
    fail(
      op,
      `groups ${groups} must divide Cin ${cin} and Cout ${cout} (x ${fmtShape(xShape)}, w ${
        fmtShape(wShape)
      })`,
    );
  }
  if (cg !== cin / groups) {
    fail(
      op,
      `w ${fmtShape(wShape)} must have Cin/groups = ${cin}/${groups} = ${cin / groups} input channels ` +
        `(axis 2) for x ${fmtShape(xShape)}, got ${cg}`,
    );
  }
  if (h + 2 * padding < kh || w + 2 * padding < kw) {
    fail(
      op,
      `the kernel ${kh}x${kw} is larger than the padded input ${h + 2 * padding}x${w + 2 * padding} ` +
        `(x ${fmtShape(xShape)}, padding ${padding})`,
    );
  }
  const ho = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const wo = Math.floor((w + 2 * padding - kw) / stride) + 1;
  return { n, h, w, cin, kh, kw, cout, stride, padding, groups, ho, wo };
}

/** Elements start, start + s, ..., `count` of them along `axis`, by slice + pad + reshape (no strided slice op). */
function strided(x: Tensor<"f32", number>, axis: number, start: number, count: number, s: number) {
  const taken = x.slice(axis, start, start + s * (count - 1) + 1);
  if (s === 1) return taken;
  const padded = taken.pad(axis, 0, s - 1); // length s * count
  const shape = [...padded.shape];
  shape.splice(axis, 1, count, s);
  return padded.reshape(shape).slice(axis + 1, 0, 1).squeeze(axis + 1);
}

/**
 * 2-D convolution as im2col + one batched matmul, written over movement primitives and `matmul`.
 * x [N, H, W, Cin] (NHWC), w [KH, KW, Cin/groups, Cout] -> [N, Ho, Wo, Cout]. This composite is
 * the reference numbers of the conv2d primitive and the baseline of `deno task bench conv`: it stores
 * the [N*Ho*Wo, KH*KW*Cin] column matrix, which the fused kernel never does.
 */
export function conv2dIm2col(
  x: Tensor<"f32", 4>,
  w: Tensor<"f32", 4>,
  opts: Conv2dOptions = {},
): Tensor<"f32", 4> {
  const g = conv2dGeometry("conv2dIm2col", x.shape, w.shape, opts);
  const p = g.padding;
  const xp = p === 0 ? x : x.pad(1, p, p).pad(2, p, p);
  const taps: Tensor<"f32", number>[] = [];
  for (let i = 0; i < g.kh; i++) {
    const rows = strided(xp, 1, i, g.ho, g.stride);
    for (let j = 0; j < g.kw; j++) taps.push(strided(rows, 2, j, g.wo, g.stride));
  }
  // Each tap is [N, Ho, Wo, Cin]; grouped channels split as [G, Cin/G] after the tap axis.
  const cg = g.cin / g.groups;
  const og = g.cout / g.groups;
  const m = g.n * g.ho * g.wo;
  const k = g.kh * g.kw * cg;
  const cols = concat(taps.map((t) => t.reshape([m, 1, g.groups, cg])), 1) // [M, KH*KW, G, cg]
    .permute([2, 0, 1, 3])
    .reshape([g.groups, m, k]);
  const wg = w.reshape([k, g.groups, og]).permute([1, 0, 2]); // [G, K, og]
  const out = cols.matmul(wg); // [G, M, og]
  return out.permute([1, 0, 2]).reshape([g.n, g.ho, g.wo, g.cout]);
}

/**
 * 2-D convolution, NHWC, as the conv2d primitive (one implicit-GEMM kernel, bias and activation
 * fused as its epilogue): x [N, H, W, Cin], w [KH, KW, Cin/groups, Cout] -> [N, Ho, Wo, Cout] with
 * Ho = floor((H + 2 padding - KH) / stride) + 1. Zero padding on every side; `groups` splits the
 * channels into independent convolutions (groups = Cin = Cout is depthwise).
 */
export function conv2d(
  x: Tensor<"f32", 4>,
  w: Tensor<"f32", 4>,
  opts: Conv2dOptions = {},
): Tensor<"f32", 4> {
  const g = conv2dGeometry("conv2d", x.shape, w.shape, opts);
  const arg = { stride: g.stride, padding: g.padding, groups: g.groups };
  return new Tensor<"f32", 4>(node("conv2d", [x.node, w.node], arg));
}

/** Options of `groupNorm`: per-channel scale and bias [C] (absent: 1 and 0), and eps. */
export interface GroupNormOptions {
  scale?: Tensor<"f32", 1>;
  bias?: Tensor<"f32", 1>;
  eps?: number;
}

/**
 * GroupNorm over NHWC: the C channels split into `groups` groups of C/groups; each (sample, group)
 * is normalized over H, W and its channels with the biased variance, then scaled and shifted per
 * channel. x [N, H, W, C] -> [N, H, W, C]; scale, bias [C].
 */
export function groupNorm(
  x: Tensor<"f32", 4>,
  groups: number,
  opts: GroupNormOptions = {},
): Tensor<"f32", 4> {
  if (x.rank !== 4) fail("groupNorm", `x must be NHWC [N, H, W, C], got ${fmtShape(x.shape)}`);
  const [n, h, w, c] = x.shape as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    fail(
      "groupNorm",
      `groups must be a positive divisor of C = ${c} (x ${fmtShape(x.shape)}), got ${groups}`,
    );
  }
  for (const [name, t] of [["scale", opts.scale], ["bias", opts.bias]] as const) {
    if (t && (t.rank !== 1 || t.dim(0) !== c)) {
      fail(
        "groupNorm",
        `${name} must be [${c}] (one per channel of x ${fmtShape(x.shape)}), got ${fmtShape(t.shape)}`,
      );
    }
  }
  const eps = opts.eps ?? 1e-5;
  const grouped = x.reshape([n, h * w, groups, c / groups]);
  const centered = grouped.sub(grouped.mean([1, 3], { keepdims: true }));
  const inv = centered.square().mean([1, 3], { keepdims: true }).add(eps).rsqrt(); // [N, 1, G, 1]
  let y = centered.mul(inv).reshape([n, h, w, c]) as Tensor<"f32", 4>;
  if (opts.scale) y = y.mul(opts.scale);
  if (opts.bias) y = y.add(opts.bias);
  return y;
}

/** Nearest-neighbour upsampling: x [N, H, W, C] -> [N, H*factor, W*factor, C] (each pixel a factor x factor block). */
export function upsampleNearest(x: Tensor<"f32", 4>, factor: number): Tensor<"f32", 4> {
  if (x.rank !== 4) fail("upsampleNearest", `x must be NHWC [N, H, W, C], got ${fmtShape(x.shape)}`);
  if (!Number.isInteger(factor) || factor < 1) {
    fail("upsampleNearest", `factor must be an integer >= 1, got ${factor}`);
  }
  const [n, h, w, c] = x.shape as [number, number, number, number];
  return x.reshape([n, h, 1, w, 1, c])
    .broadcastTo([n, h, factor, w, factor, c])
    .reshape([n, h * factor, w * factor, c]);
}

/** Average pooling over non-overlapping k x k windows (stride k): x [N, H, W, C] -> [N, H/k, W/k, C]. */
export function avgPool2d(x: Tensor<"f32", 4>, k: number): Tensor<"f32", 4> {
  if (x.rank !== 4) fail("avgPool2d", `x must be NHWC [N, H, W, C], got ${fmtShape(x.shape)}`);
  const [n, h, w, c] = x.shape as [number, number, number, number];
  if (!Number.isInteger(k) || k < 1 || h % k !== 0 || w % k !== 0) {
    fail(
      "avgPool2d",
      `k must be a positive integer dividing H = ${h} and W = ${w} (x ${fmtShape(x.shape)}), got ${k}`,
    );
  }
  return x.reshape([n, h / k, k, w / k, k, c]).mean([2, 4]) as Tensor<"f32", 4>;
}
