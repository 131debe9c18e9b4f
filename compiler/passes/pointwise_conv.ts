import { type ConvGeometry, convGeometry, type Node, node } from "../ir/mod.ts";
import { rewriteBottomUp } from "./rewrite.ts";

/**
 * Whether a convolution is a plain matrix product over its pixels: a 1x1 kernel, stride 1, no
 * padding, one group. Then out[b, i, j, o] = sum over c of x[b, i, j, c] w[0, 0, c, o], which is
 * x viewed [N*H*W, Cin] times w viewed [Cin, Cout].
 */
export function isPointwise(g: ConvGeometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.stride === 1 && g.padding === 0 && g.groups === 1;
}

/**
 * Rewrites every pointwise conv2d (isPointwise) as reshape + matmul + reshape, before fusion: the
 * product then gets the tuned matmul kernel of its shape (kernels/autotune.ts) and the matmul's
 * epilogue fusion and merging of contractions, where the conv kernel's tiles are sized for
 * k x k windows. The reshapes are views, so nothing is copied. Returns the roots in order.
 */
export function pointwiseConvsAsMatmuls(roots: readonly Node[]): Node[] {
  return rewriteBottomUp(roots, (n) => n.op === "conv2d" ? asMatmul(n as Node<"conv2d">) : n);
}

function asMatmul(n: Node<"conv2d">): Node {
  const [x, w] = [n.src[0]!, n.src[1]!];
  const g = convGeometry(x.shape, w.shape, n.arg);
  if (typeof g === "string") throw new Error(`internal: conv2d ${g}`); // the shape rule passed it
  if (!isPointwise(g)) return n;
  const pixels = node("reshape", [x], { shape: [g.n * g.h * g.w, g.cin] });
  const weights = node("reshape", [w], { shape: [g.cin, g.cout] });
  return node("reshape", [node("matmul", [pixels, weights], null)], { shape: n.shape });
}
