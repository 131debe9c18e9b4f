import type { Conv2dArg } from "./ops.ts";

/**
 * The sizes of one conv2d, derived from x [N, H, W, Cin], w [KH, KW, Cin/groups, Cout] and its arg:
 * what the shape rule checks and the interpreter, VJP and kernel index by. `cg` / `og` are the
 * input / output channels of one group.
 */
export interface ConvGeometry {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly kh: number;
  readonly kw: number;
  readonly cout: number;
  readonly cg: number;
  readonly og: number;
  readonly ho: number;
  readonly wo: number;
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
}

/** The geometry, or a message saying which size is wrong (the shape rule throws it). */
export function convGeometry(
  x: readonly number[],
  w: readonly number[],
  arg: Conv2dArg,
): ConvGeometry | string {
  const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;
  const { stride, padding, groups } = arg;
  if (!Number.isInteger(stride) || stride < 1) return `stride must be an integer >= 1, got ${stride}`;
  if (!Number.isInteger(padding) || padding < 0) return `padding must be an integer >= 0, got ${padding}`;
  if (!Number.isInteger(groups) || groups < 1) return `groups must be an integer >= 1, got ${groups}`;
  if (x.length !== 4 || w.length !== 4) {
    return `expects x [N, H, W, Cin] and w [KH, KW, Cin/groups, Cout], got ${fmt(x)} and ${fmt(w)}`;
  }
  const [n, h, wd, cin] = x as [number, number, number, number];
  const [kh, kw, cg, cout] = w as [number, number, number, number];
  if (cin % groups !== 0 || cout % groups !== 0 || cg !== cin / groups) {
    return `w ${fmt(w)} does not fit x ${fmt(x)} with ${groups} group(s): ` +
      `needs Cin/groups = ${cin / groups} input channels and Cout divisible by ${groups}`;
  }
  if (h + 2 * padding < kh || wd + 2 * padding < kw) {
    return `the kernel ${kh}x${kw} is larger than the padded input ${h + 2 * padding}x${wd + 2 * padding}`;
  }
  const ho = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const wo = Math.floor((wd + 2 * padding - kw) / stride) + 1;
  return { n, h, w: wd, cin, kh, kw, cout, cg, og: cout / groups, ho, wo, stride, padding, groups };
}
