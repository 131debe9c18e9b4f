/**
 * Images <-> patch rows, and patch rows <-> sequence positions.
 *
 * Placement is a one-hot matrix product: place[b, t, j] = 1 where patch j of row b sits at position t
 * (patch_pos), so the sequence is `place @ patches` and the patches read back are `place^T @ h`. With
 * 0/1 weights and one patch per position the products are exact, and their gradients are matrix
 * products too; a gather from concat([text, patches]) would differentiate into a scatter_add, which
 * the GPU runs as a loop over every update for every output row (O(rows * n)), far slower here.
 */
import { iota } from "../functions.ts";
import type { Tensor } from "../tensor.ts";

export interface ImageGeometry {
  /** Image slots per row, channels, side of the (padded) image, side of a patch. */
  readonly N: number;
  readonly C: number;
  readonly size: number;
  readonly patch: number;
}

/** images [B, N, C, H, W] -> [B, N*P, C*p*p]; patches row-major over the grid, values (c, y, x) inside. */
export function patchify(images: Tensor<"f32", number>, g: ImageGeometry): Tensor<"f32", 3> {
  const [b, grid] = [images.dim(0), g.size / g.patch];
  return images
    .reshape([b, g.N, g.C, grid, g.patch, grid, g.patch])
    .permute([0, 1, 3, 5, 2, 4, 6]) // [B, N, gy, gx, C, py, px]
    .reshape([b, g.N * grid * grid, g.C * g.patch * g.patch]);
}

/** The inverse of `patchify`: [B, N*P, C*p*p] -> [B, N, C, H, W]. */
export function unpatchify(patches: Tensor<"f32", 3>, g: ImageGeometry): Tensor<"f32", 5> {
  const [b, grid] = [patches.dim(0), g.size / g.patch];
  return patches
    .reshape([b, g.N, grid, grid, g.C, g.patch, g.patch])
    .permute([0, 1, 4, 2, 5, 3, 6]) // [B, N, C, gy, py, gx, px]
    .reshape([b, g.N, g.C, g.size, g.size]);
}

/** f32 [B, T, N*P]: 1 where patch j of row b is at position t. patchPos: i32 [B, N, P], -1 = absent. */
export function placement(patchPos: Tensor<"i32", 3>, seq: number): Tensor<"f32", 3> {
  const [b, n, p] = patchPos.shape as [number, number, number];
  const positions = iota([b, seq, n * p], 1, "i32");
  return positions.eq(patchPos.reshape([b, 1, n * p])).cast("f32");
}

/**
 * The input sequence [B, T, D]: text embeddings where no patch sits, patch vectors where one does.
 * text [B, T, D], patches [B, N*P, D], place [B, T, N*P].
 */
export function placeInSequence(
  text: Tensor<"f32", 3>,
  patches: Tensor<"f32", 3>,
  place: Tensor<"f32", 3>,
): Tensor<"f32", 3> {
  const covered = place.sum(-1).unsqueeze(-1); // [B, T, 1], 1 at patch positions
  return text.mul(covered.neg().add(1)).add(place.matmul(patches)) as Tensor<"f32", 3>;
}

/** The hidden states at each patch's position: h [B, T, D] -> [B, N*P, D] (zeros for absent images). */
export function readPatches(h: Tensor<"f32", 3>, place: Tensor<"f32", 3>): Tensor<"f32", 3> {
  return place.transpose().matmul(h);
}
