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
  tileStores,
  u32,
  variantName,
} from "./matmul_common.ts";

type RegisterVariant = Extract<MatmulVariant, { kind: "register" }>;

/** k is unrolled by this much; the remainder is emitted as straight-line steps. */
const UNROLL = 4;

/**
 * Barrier-free matmul: thread (x, y) of a wgX x wgY workgroup accumulates C[row_r, col_c] for
 * row_r = base + y + r * wgY (r < tm) and col_c = base + x + c * wgX (c < tn) in registers. Rows and
 * columns past the edge are clamped for loading and skipped when storing.
 */
export function registerMatmul(name: string, shape: MatmulShape, io: MatmulIO, v: RegisterVariant): Kernel {
  const { m, n, k } = shape;
  const rows = v.tm * v.wgY;
  const cols = v.tn * v.wgX;
  const g = tileGrid(shape, rows, cols);
  const rs = range(v.tm);
  const cs = range(v.tn);
  const acc = (r: number, c: number) => `${P}acc_${r}_${c}`;
  const b = `${P}batch`;

  const step = (kk: string) => {
    const a = rs.map((r) => `let ${P}a${r} = ${io.loadA(b, `${P}row${r}`, kk)};`);
    const bs = cs.map((c) => `let ${P}b${c} = ${io.loadB(b, kk, `${P}col${c}`)};`);
    const fmas = rs.flatMap((r) => cs.map((c) => `${acc(r, c)} = fma(${P}a${r}, ${P}b${c}, ${acc(r, c)});`));
    return [...a, ...bs, ...fmas].map((s) => `      ${s}`).join("\n");
  };
  const kMain = k - (k % UNROLL);
  const unrolled = range(UNROLL).map((t) =>
    `    {\n      let ${P}kk = ${P}k + ${u32(t)};\n${step(`${P}kk`)}\n    }`
  );
  const mainLoop = kMain === 0 ? "" : `
  for (var ${P}k = 0u; ${P}k < ${u32(kMain)}; ${P}k += ${u32(UNROLL)}) {
${unrolled.join("\n")}
  }`;
  const tail = range(k - kMain).map((t) => `  {\n${step(u32(kMain + t))}\n  }`).join("\n");

  const wgsl = `${io.declarations}

${entryHeader([v.wgX, v.wgY], g)}
  let ${P}row_base = ${P}tile_row * ${u32(rows)} + ${P}lid.y;
  let ${P}col_base = ${P}tile_col * ${u32(cols)} + ${P}lid.x;
${rs.map((r) => `  let ${P}row${r} = min(${P}row_base + ${u32(r * v.wgY)}, ${u32(m - 1)});`).join("\n")}
${cs.map((c) => `  let ${P}col${c} = min(${P}col_base + ${u32(c * v.wgX)}, ${u32(n - 1)});`).join("\n")}
${rs.flatMap((r) => cs.map((c) => `  var ${acc(r, c)} = 0.0;`)).join("\n")}${mainLoop}
${tail}
${tileStores(io, shape, rs.map((r) => r * v.wgY), cs.map((c) => c * v.wgX), acc)}
}
`;
  return matmulResult(name, shape, io, g, [v.wgX, v.wgY, 1], wgsl, `${variantName(v)}, no barriers`);
}
