import type { Kernel } from "./kernel.ts";
import {
  entryHeader,
  type MatmulIO,
  matmulResult,
  type MatmulShape,
  type MatmulVariant,
  P,
  range,
  tileGrid,
  u32,
  variantName,
} from "./matmul_common.ts";

type SharedVariant = Extract<MatmulVariant, { kind: "shared" }>;

/**
 * Tiled matmul: each workgroup owns a tile x tile block of C and walks k in tk-deep slices. A slice
 * of A ([tile, tk], stored k-major) and of B ([tk, tile]) is loaded cooperatively into workgroup
 * memory, zero-filled past the edges; thread (x, y) then accumulates rows y + r * (tile / tm) and
 * columns x + c * (tile / tn), so a warp reads consecutive words of the B slice and one broadcast
 * word of the A slice.
 */
export function sharedMatmul(name: string, shape: MatmulShape, io: MatmulIO, v: SharedVariant): Kernel {
  const { m, n, k } = shape;
  const { tile, tm, tn, tk } = v;
  if (tile % tm !== 0 || tile % tn !== 0) {
    throw new Error(`shared matmul variant ${variantName(v)}: tile must be a multiple of tm and tn`);
  }
  const tx = tile / tn;
  const ty = tile / tm;
  const threads = tx * ty;
  const g = tileGrid(shape, tile, tile);
  const b = `${P}batch`;
  const acc = (r: number, c: number) => `${P}acc_${r}_${c}`;
  const perThread = Math.ceil((tile * tk) / threads);
  const ragged = (tile * tk) % threads !== 0;
  // Neighbouring threads store neighbouring k of one row; the pad puts them in different banks.
  const aStride = tile + 1;

  // Guards are emitted only where the shape does not divide evenly; the clamps keep loads in range.
  const guarded = (value: string, conds: string[]) =>
    conds.length === 0 ? value : `select(0.0, ${value}, ${conds.join(" && ")})`;
  const loadSlot = (s: number, body: (e: string) => string[]) => {
    const e = `${P}e${s}`;
    const lines = body(e).map((l) => `      ${l}`).join("\n");
    const open = ragged ? `    if (${e} < ${u32(tile * tk)}) {\n` : "    {\n";
    return `${open}      let ${e} = ${P}tid + ${u32(s * threads)};\n${lines}\n    }`;
  };
  const loadA = (e: string) => [
    `let ${P}i = ${P}tile_row * ${u32(tile)} + ${e} / ${u32(tk)};`,
    `let ${P}kk = ${P}k0 + ${e} % ${u32(tk)};`,
    `${P}as[(${e} % ${u32(tk)}) * ${u32(aStride)} + ${e} / ${u32(tk)}] = ${
      guarded(io.loadA(b, `min(${P}i, ${u32(m - 1)})`, `min(${P}kk, ${u32(k - 1)})`), [
        ...(m % tile ? [`${P}i < ${u32(m)}`] : []),
        ...(k % tk ? [`${P}kk < ${u32(k)}`] : []),
      ])
    };`,
  ];
  const loadB = (e: string) => [
    `let ${P}kk = ${P}k0 + ${e} / ${u32(tile)};`,
    `let ${P}j = ${P}tile_col * ${u32(tile)} + ${e} % ${u32(tile)};`,
    `${P}bs[${e}] = ${
      guarded(io.loadB(b, `min(${P}kk, ${u32(k - 1)})`, `min(${P}j, ${u32(n - 1)})`), [
        ...(k % tk ? [`${P}kk < ${u32(k)}`] : []),
        ...(n % tile ? [`${P}j < ${u32(n)}`] : []),
      ])
    };`,
  ];
  const compute = range(tk).map((kk) =>
    [
      ...range(tm).map((r) => `let ${P}a${r} = ${P}as[${u32(kk * aStride + r * ty)} + ${P}lid.y];`),
      ...range(tn).map((c) => `let ${P}b${c} = ${P}bs[${u32(kk * tile + c * tx)} + ${P}lid.x];`),
      ...range(tm).flatMap((r) =>
        range(tn).map((c) => `${acc(r, c)} = fma(${P}a${r}, ${P}b${c}, ${acc(r, c)});`)
      ),
    ].map((l) => `      ${l}`).join("\n")
  );

  const wgsl = `${io.declarations}

var<workgroup> ${P}as: array<f32, ${tk * aStride}>; // [tk, tile + 1]: A slice, k-major, padded
var<workgroup> ${P}bs: array<f32, ${tile * tk}>; // [tk, tile]

${entryHeader([tx, ty], g)}
  let ${P}tid = ${P}lid.y * ${u32(tx)} + ${P}lid.x;
${range(tm).flatMap((r) => range(tn).map((c) => `  var ${acc(r, c)} = 0.0;`)).join("\n")}
  for (var ${P}k0 = 0u; ${P}k0 < ${u32(k)}; ${P}k0 += ${u32(tk)}) {
${range(perThread).map((s) => loadSlot(s, loadA)).join("\n")}
${range(perThread).map((s) => loadSlot(s, loadB)).join("\n")}
    workgroupBarrier();
${compute.map((block) => `    {\n${block}\n    }`).join("\n")}
    workgroupBarrier();
  }
  let ${P}row_base = ${P}tile_row * ${u32(tile)} + ${P}lid.y;
  let ${P}col_base = ${P}tile_col * ${u32(tile)} + ${P}lid.x;
${
    range(tm).flatMap((r) =>
      range(tn).map((c) => {
        const [i, j] = [`(${P}row_base + ${u32(r * ty)})`, `(${P}col_base + ${u32(c * tx)})`];
        return `  if (${i} < ${u32(m)} && ${j} < ${u32(n)}) { ${io.store(b, i, j, acc(r, c))} }`;
      })
    ).join("\n")
  }
}
`;
  return matmulResult(name, shape, io, g, [tx, ty, 1], wgsl, `${variantName(v)}, workgroup-shared tiles`);
}
