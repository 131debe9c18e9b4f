import { fmtShape } from "../../compiler/ir/mod.ts";
import { concat, iota } from "../functions.ts";
import { fail, type Tensor } from "../tensor.ts";

/**
 * Rotary position embedding (RoPE), "rotate-half" convention (GPT-NeoX, LLaMA as in Hugging Face):
 * the head dim is split into halves x1 = x[..., :d/2] and x2 = x[..., d/2:], and pair i (x1[i], x2[i])
 * is rotated by the angle pos * base^(-2i/d):
 *
 *   out1 = x1 cos - x2 sin,   out2 = x2 cos + x1 sin,   i.e. out = x cos + rotateHalf(x) sin.
 *
 * So q(m)·k(n) depends on the positions only through m - n. Weights trained with the interleaved
 * convention (pairs (x[2i], x[2i+1]), the original RoFormer/Meta code) need their q/k columns permuted.
 *
 * x: [B, H, T, Dh] (Dh even); positions: int [T] (shared by the batch) or [B, T]. Returns [B, H, T, Dh].
 * The angles are computed in the graph from the positions (iota, cast, exp), so nothing is tabulated.
 */
export function rope1d(
  x: Tensor<"f32", 4>,
  positions: Tensor<"i32" | "u32", number>,
  base = 10000,
): Tensor<"f32", 4> {
  const dh = x.dim(-1);
  if (dh % 2 !== 0) fail("rope1d", `the head dim must be even, got ${dh} in x ${fmtShape(x.shape)}`);
  const angles = rotaryAngles("rope1d", x, positions, dh / 2, base); // [.., T, Dh/2]
  return rotateHalves(x, angles.cos(), angles.sin());
}

/**
 * 2-D RoPE for image patches: the first half of the head dim rotates with the row coordinate and the
 * second half with the column coordinate, each half by `rope1d`'s rotate-half rule over its own Dh/2
 * dims (frequencies base^(-2i/(Dh/2))). Then q·k depends only on (row - row', col - col').
 *
 * x: [B, H, T, Dh] (Dh divisible by 4); rows, cols: int [T] or [B, T] (see `patchGrid`).
 */
export function rope2d(
  x: Tensor<"f32", 4>,
  rows: Tensor<"i32" | "u32", number>,
  cols: Tensor<"i32" | "u32", number>,
  base = 10000,
): Tensor<"f32", 4> {
  const dh = x.dim(-1);
  if (dh % 4 !== 0) {
    fail("rope2d", `the head dim must be divisible by 4, got ${dh} in x ${fmtShape(x.shape)}`);
  }
  const half = dh / 2;
  const byRow = rope1d(x.slice(-1, 0, half), rows, base);
  const byCol = rope1d(x.slice(-1, half), cols, base);
  return concat([byRow, byCol], -1);
}

/** Row and column of each patch of an h x w grid, in row-major order: i32 [h * w] each. */
export function patchGrid(h: number, w: number): { rows: Tensor<"i32", 1>; cols: Tensor<"i32", 1> } {
  return {
    rows: iota([h, w], 0, "i32").reshape([h * w]),
    cols: iota([h, w], 1, "i32").reshape([h * w]),
  };
}

/** pos * base^(-i/pairs) for i < pairs: [T, pairs], or [B, 1, T, pairs] for per-batch positions. */
function rotaryAngles(
  op: string,
  x: Tensor<"f32", 4>,
  positions: Tensor<"i32" | "u32", number>,
  pairs: number,
  base: number,
): Tensor<"f32", number> {
  const [b, , t] = x.shape;
  const shared = positions.rank === 1 && positions.dim(0) === t;
  const perBatch = positions.rank === 2 && positions.dim(0) === b && positions.dim(1) === t;
  if (x.rank !== 4 || !(shared || perBatch)) {
    fail(
      op,
      `expects x [B, H, T, Dh] and positions [T] or [B, T], got ${fmtShape(x.shape)} and ${
        fmtShape(positions.shape)
      }`,
    );
  }
  const inverseFreq = iota([pairs], 0, "f32").mul(-Math.log(base) / pairs).exp(); // [pairs]
  const pos = positions.cast("f32").unsqueeze(-1); // [T, 1] or [B, T, 1]
  const angles = pos.mul(inverseFreq); // [T, pairs] or [B, T, pairs]
  return perBatch ? angles.unsqueeze(1) : angles;
}

function rotateHalves(x: Tensor<"f32", 4>, cos: Tensor<"f32", number>, sin: Tensor<"f32", number>) {
  const half = x.dim(-1) / 2;
  const [x1, x2] = [x.slice(-1, 0, half), x.slice(-1, half)]; // [B, H, T, Dh/2] each
  const out1 = x1.mul(cos).sub(x2.mul(sin)) as Tensor<"f32", 4>;
  const out2 = x2.mul(cos).add(x1.mul(sin)) as Tensor<"f32", 4>;
  return concat([out1, out2], -1);
}
