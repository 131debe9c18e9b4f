import { type ConvGeometry, convGeometry, type Node, node } from "./ir/mod.ts";
import { isPointwise } from "./passes/pointwise_conv.ts";

/**
 * The conv2d VJP, built from conv2d itself, one batched matmul and movement ops (views: no kernel of
 * their own, the consuming kernel reads them in place).
 *
 * - dx is a stride-1 convolution of dy, dilated by the stride (zeros between its elements) and
 *   padded by KH - 1 - padding, with the kernel flipped in space and its in/out channels swapped
 *   per group: the transposed convolution, so the fused conv kernel runs the input gradient too.
 * - dw[p, q, c, o] = sum over (b, i, j) of x_padded[b, i*s + p, j*s + q, c] dy[b, i, j, o]: a matmul
 *   of the im2col view of x (transposed, [G, KH*KW*cg, M]) with dy ([G, M, og]). As a convolution it
 *   would need a dilated kernel and, with groups, a block diagonal; the matmul reads the window view
 *   in place (implicit GEMM through the view rules), so nothing [M, K]-sized is stored.
 *   With stride 1 and one group it is itself a convolution, and runs as one (weightGradConv): the
 *   conv kernel's inner loop has no index arithmetic, where the matmul's window view decodes every
 *   value through a 9-way concat (on lavapipe 837 -> see ARCHITECTURE.md).
 *   A pointwise conv (1x1, stride 1, no padding, one group) is a matmul, and so are its gradients:
 *   dw = x^T dy over the pixels; dx stays a (pointwise) conv2d, which the lowering makes a matmul
 *   (passes/pointwise_conv.ts) like the forward.
 */
export function conv2dVjp(n: Node<"conv2d">, ct: Node): [Node, Node] {
  const [x, w] = [n.src[0]!, n.src[1]!];
  const g = convGeometry(x.shape, w.shape, n.arg);
  if (typeof g === "string") throw new Error(`conv2d: ${g}`);
  const dw = isPointwise(g)
    ? pointwiseWeightGrad(g, x, ct)
    : g.stride === 1 && g.groups === 1
    ? weightGradConv(g, x, ct)
    : weightGrad(g, x, ct);
  return [inputGrad(g, w, ct), dw];
}

function inputGrad(g: ConvGeometry, w: Node, dy: Node): Node {
  const s = g.stride;
  // wt[p, q, o, gi*cg + c] = w[KH-1-p, KW-1-q, c, gi*og + o]. One group: a permute alone, no reshape,
  // so the conv kernel reads it by axes (a reshape view goes through the flat index, which the
  // shader compiler cannot take apart again: dx ran 1.4x slower than the forward conv on lavapipe).
  const flipped = flip(flip(w, 0), 1);
  const wt = g.groups === 1 ? node("permute", [flipped], { perm: [0, 1, 3, 2] }) : node("reshape", [
    node("permute", [node("reshape", [flipped], { shape: [g.kh, g.kw, g.cg, g.groups, g.og] })], {
      perm: [0, 1, 4, 3, 2],
    }),
  ], { shape: [g.kh, g.kw, g.og, g.cin] });
  const pad = g.kh - 1 - g.padding;
  if (s === 1 && g.kh === g.kw && pad >= 0) {
    // Stride 1, square kernel: the same padding on every side, which the conv kernel applies itself
    // (one edge test per tap) rather than a padded view testing every load.
    return node("conv2d", [dy, wt], { stride: 1, padding: pad, groups: g.groups });
  }
  let d = dilate(dilate(dy, 1, s), 2, s); // [N, (Ho-1)s+1, (Wo-1)s+1, Cout]
  d = padOrCrop(d, 1, g.kh - 1 - g.padding, g.h - 1 + g.padding - (g.ho - 1) * s);
  d = padOrCrop(d, 2, g.kw - 1 - g.padding, g.w - 1 + g.padding - (g.wo - 1) * s);
  return node("conv2d", [d, wt], { stride: 1, padding: 0, groups: g.groups });
}

/** dw of a pointwise conv: x viewed [Cin, N*H*W] (transposed) times dy viewed [N*H*W, Cout]. */
function pointwiseWeightGrad(g: ConvGeometry, x: Node, dy: Node): Node {
  const m = g.n * g.h * g.w;
  const xt = node("permute", [node("reshape", [x], { shape: [m, g.cin] })], { perm: [1, 0] });
  const dw = node("matmul", [xt, node("reshape", [dy], { shape: [m, g.cout] })], null);
  return node("reshape", [dw], { shape: [1, 1, g.cin, g.cout] });
}

function weightGrad(g: ConvGeometry, x: Node, dy: Node): Node {
  const m = g.n * g.ho * g.wo;
  const k = g.kh * g.kw * g.cg;
  const cols = node("permute", [im2col(g, x)], { perm: [2, 1, 3, 0] }); // [G, KH*KW, cg, M]
  const a = node("reshape", [cols], { shape: [g.groups, k, m] });
  const dyg = node("reshape", [dy], { shape: [m, g.groups, g.og] });
  const b = node("permute", [dyg], { perm: [1, 0, 2] }); // [G, M, og]
  const dw = node("matmul", [a, b], null); // [G, K, og]
  const perm = node("permute", [dw], { perm: [1, 0, 2] }); // [K, G, og]
  return node("reshape", [perm], { shape: [g.kh, g.kw, g.cg, g.cout] });
}

/**
 * dw as a stride-1 convolution over the batch: the channels of x become its images and its batch the
 * input channels (x viewed [Cin, H, W, N]), dy is the kernel (viewed [Ho, Wo, N, Cout]), with the
 * forward padding: out[c, p, q, o] = sum over (i, j, b) of x_padded[b, p + i, q + j, c] dy[b, i, j, o],
 * [Cin, KH, KW, Cout], which is dw with its axes in another order. Its output has only Cin*KH*KW rows
 * (9 for a one-channel 3x3 stem): too few to keep the workers busy over the long reduction, so the
 * batch is split into `parts` chunks, each a group of a grouped conv (its own columns, in parallel),
 * summed afterwards.
 */
function weightGradConv(g: ConvGeometry, x: Node, dy: Node): Node {
  const rows = g.cin * g.kh * g.kw;
  let parts = 1;
  for (let s = 1; s <= g.n; s++) if (g.n % s === 0 && s * rows <= MIN_DW_ROWS) parts = s;
  const xt = node("permute", [x], { perm: [3, 1, 2, 0] }); // [Cin, H, W, N], n = part * N/parts + n'
  // [Ho, Wo, N/parts, parts*Cout]; one part: a permute alone, read by axes (see inputGrad).
  const kernel = parts === 1 ? node("permute", [dy], { perm: [1, 2, 0, 3] }) : node("reshape", [
    node("permute", [node("reshape", [dy], { shape: [parts, g.n / parts, g.ho, g.wo, g.cout] })], {
      perm: [2, 3, 1, 0, 4],
    }),
  ], { shape: [g.ho, g.wo, g.n / parts, parts * g.cout] });
  const out = node("conv2d", [xt, kernel], { stride: 1, padding: g.padding, groups: parts });
  const split = node("reshape", [out], { shape: [g.cin, g.kh, g.kw, parts, g.cout] });
  const summed = parts === 1 ? out : node("reshape", [node("sum", [split], { axes: [3] })], {
    shape: [g.cin, g.kh, g.kw, g.cout],
  });
  return node("permute", [summed], { perm: [1, 2, 0, 3] });
}

/** The batch is split until the weight-gradient conv has about this many output rows (see above). */
const MIN_DW_ROWS = 512;

/** The input windows as a view: [M = N*Ho*Wo, KH*KW, G, cg], taps in (p, q) row-major order. */
export function im2col(g: ConvGeometry, x: Node): Node {
  const p = g.padding;
  const xp = p === 0 ? x : node("pad", [x], { before: [0, p, p, 0], after: [0, p, p, 0], value: 0 });
  const m = g.n * g.ho * g.wo;
  const taps: Node[] = [];
  for (let i = 0; i < g.kh; i++) {
    const rows = strided(xp, 1, i, g.ho, g.stride);
    for (let j = 0; j < g.kw; j++) {
      const tap = strided(rows, 2, j, g.wo, g.stride); // [N, Ho, Wo, Cin]
      taps.push(node("reshape", [tap], { shape: [m, 1, g.groups, g.cg] }));
    }
  }
  return taps.length === 1 ? taps[0]! : node("concat", taps, { axis: 1 });
}

const sliceAxis = (x: Node, axis: number, start: number, end: number) =>
  node("slice", [x], {
    starts: x.shape.map((_, i) => (i === axis ? start : 0)),
    ends: x.shape.map((d, i) => (i === axis ? end : d)),
  });

const padAxis = (x: Node, axis: number, before: number, after: number) =>
  before === 0 && after === 0 ? x : node("pad", [x], {
    before: x.shape.map((_, i) => (i === axis ? before : 0)),
    after: x.shape.map((_, i) => (i === axis ? after : 0)),
    value: 0,
  });

/** Pads `axis` by before/after, or crops where one of them is negative. */
function padOrCrop(x: Node, axis: number, before: number, after: number): Node {
  const d = x.shape[axis]!;
  const cropped = before < 0 || after < 0
    ? sliceAxis(x, axis, Math.max(0, -before), d - Math.max(0, -after))
    : x;
  return padAxis(cropped, axis, Math.max(0, before), Math.max(0, after));
}

/** Elements start, start + s, ... (`count` of them) along `axis`, as slice + pad + reshape. */
function strided(x: Node, axis: number, start: number, count: number, s: number): Node {
  const taken = sliceAxis(x, axis, start, start + s * (count - 1) + 1);
  if (s === 1) return taken;
  const padded = padAxis(taken, axis, 0, s - 1); // length s * count
  const split = [...padded.shape];
  split.splice(axis, 1, count, s);
  const first = sliceAxis(node("reshape", [padded], { shape: split }), axis + 1, 0, 1);
  return node("reshape", [first], { shape: taken.shape.map((d, i) => (i === axis ? count : d)) });
}

/** s - 1 zeros after every element along `axis` but the last: length (L - 1) s + 1. */
function dilate(x: Node, axis: number, s: number): Node {
  const l = x.shape[axis]!;
  if (s === 1 || l === 1) return x;
  const split = [...x.shape];
  split.splice(axis, 1, l, 1);
  const spread = padAxis(node("reshape", [x], { shape: split }), axis + 1, 0, s - 1);
  const joined = node("reshape", [spread], { shape: x.shape.map((d, i) => (i === axis ? d * s : d)) });
  return sliceAxis(joined, axis, 0, (l - 1) * s + 1);
}

/** `axis` reversed, as a concat of its elements in reverse order (kernels are 1..7 wide). */
function flip(x: Node, axis: number): Node {
  const l = x.shape[axis]!;
  if (l === 1) return x;
  const parts = [...Array(l).keys()].reverse().map((i) => sliceAxis(x, axis, i, i + 1));
  return node("concat", parts, { axis });
}
