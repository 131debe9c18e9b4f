import { convGeometry, type Node } from "./ir/mod.ts";

/**
 * conv2d in f64 by direct loops over NHWC: out[b, i, j, o] = sum over (p, q, c) of
 * x[b, i*s + p - pad, j*s + q - pad, g*cg + c] * w[p, q, c, o], with g = floor(o / og) and zero
 * outside x. The oracle of the conv kernel and of the conv2d VJP.
 */
export function conv2dRule(n: Node<"conv2d">, x: Float64Array, w: Float64Array): Float64Array {
  const g = convGeometry(n.src[0]!.shape, n.src[1]!.shape, n.arg);
  if (typeof g === "string") throw new Error(`conv2d: ${g}`); // the shape rule rejected it already
  const out = new Float64Array(g.n * g.ho * g.wo * g.cout);
  for (let b = 0; b < g.n; b++) {
    for (let i = 0; i < g.ho; i++) {
      for (let j = 0; j < g.wo; j++) {
        const at = ((b * g.ho + i) * g.wo + j) * g.cout;
        for (let p = 0; p < g.kh; p++) {
          const y = i * g.stride + p - g.padding;
          if (y < 0 || y >= g.h) continue;
          for (let q = 0; q < g.kw; q++) {
            const xx = j * g.stride + q - g.padding;
            if (xx < 0 || xx >= g.w) continue;
            const xAt = ((b * g.h + y) * g.w + xx) * g.cin;
            const wAt = (p * g.kw + q) * g.cg * g.cout;
            for (let o = 0; o < g.cout; o++) {
              const c0 = Math.floor(o / g.og) * g.cg;
              let s = 0;
              for (let c = 0; c < g.cg; c++) s += x[xAt + c0 + c]! * w[wAt + c * g.cout + o]!;
              out[at + o]! += s;
            }
          }
        }
      }
    }
  }
  return out;
}
