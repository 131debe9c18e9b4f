import type { Kernel } from "./kernel.ts";
import {
  entryHeader,
  type MatmulIO,
  matmulResult,
  type MatmulShape,
  type MatmulVariant,
  type MatmulVectorIO,
  P,
  range,
  tileGrid,
  tileStores,
  u32,
  variantName,
} from "./matmul_common.ts";

type VectorVariant = Extract<MatmulVariant, { kind: "vector" }>;

const COMPONENTS = ["x", "y", "z", "w"] as const;

/**
 * Why `vector` cannot run `shape` through `io` (then the scalar register kernel of the same tiles
 * does), or undefined when it can: every vectorized dim must split into whole vec4s.
 */
export function vectorBlocker(shape: MatmulShape, io: MatmulIO, v: VectorVariant): string | undefined {
  const vec = io.vector;
  if (!vec) return "the operands offer no vec4 loads";
  if (shape.k % 4) return `k = ${shape.k} is not a multiple of 4`;
  if (v.tn % 4) return `tn = ${v.tn} is not a multiple of 4`;
  if (vec.b === "n" && shape.n % 4) return `n = ${shape.n} is not a multiple of 4`;
  if (vec.a === "m" && (shape.m % 4 || v.tm % 4)) {
    return `m = ${shape.m} or tm = ${v.tm} is not a multiple of 4`;
  }
  return undefined;
}

/**
 * The register kernel's layout with vec4 operand loads. Thread (x, y) owns tm rows and tn columns of
 * the workgroup's block; columns come in groups of four adjacent ones (group g at base + (g * wgX + x) * 4),
 * and so do rows when A is read along m; otherwise rows interleave as in the register kernel
 * (base + y + r * wgY). Each step consumes four k: tm (or tm / 4 x 4) A loads and tn B loads of a vec4,
 * then 4 * tm * tn FMAs on scalar accumulators (components picked out of the loaded vectors).
 * Loads are clamped to the last whole group, so edge threads compute duplicates they do not store.
 */
export function vectorMatmul(name: string, shape: MatmulShape, io: MatmulIO, v: VectorVariant): Kernel {
  const blocker = vectorBlocker(shape, io, v);
  if (blocker) throw new Error(`vector matmul ${variantName(v)}: ${blocker}`);
  const vec = io.vector as MatmulVectorIO;
  const { m, n, k } = shape;
  const rows = v.tm * v.wgY;
  const cols = v.tn * v.wgX;
  const g = tileGrid(shape, rows, cols);
  const b = `${P}batch`;
  const rs = range(v.tm);
  const cs = range(v.tn);
  const groupedRows = vec.a === "m";
  // Offsets of row r / column c from the thread's base (its first row / column).
  const rowOffset = (r: number) => groupedRows ? (r >> 2) * 4 * v.wgY + (r & 3) : r * v.wgY;
  const colOffset = (c: number) => (c >> 2) * 4 * v.wgX + (c & 3);
  const rowBase = groupedRows ? `${P}lid.y * 4u` : `${P}lid.y`;
  const acc = (r: number, c: number) => `${P}acc_${r}_${c}`;

  // Rows and columns whose loads start a vector are clamped to the last whole vector in range.
  const rowVar = (r: number) => `${P}row${r}`;
  const colVar = (c: number) => `${P}col${c}`;
  const rowDecls = rs.filter((r) => !groupedRows || r % 4 === 0).map((r) =>
    `  let ${rowVar(r)} = min(${P}row_base + ${u32(rowOffset(r))}, ${u32(m - (groupedRows ? 4 : 1))});`
  );
  const colDecls = cs.filter((c) => vec.b === "k" || c % 4 === 0).map((c) =>
    `  let ${colVar(c)} = min(${P}col_base + ${u32(colOffset(c))}, ${u32(n - (vec.b === "n" ? 4 : 1))});`
  );

  // One k step of four: the loads, then a(r, t) * b(t, c) for t < 4.
  const kk = `${P}kk`;
  const loads: string[] = [];
  const aValue: string[][] = rs.map(() => []);
  const bValue: string[][] = range(4).map(() => []);
  if (vec.a === "k") {
    for (const r of rs) {
      loads.push(`let ${P}a${r} = ${vec.loadA4(b, rowVar(r), kk)};`);
      for (const t of range(4)) aValue[r]![t] = `${P}a${r}.${COMPONENTS[t]}`;
    }
  } else {
    for (const r of rs.filter((r) => r % 4 === 0)) {
      for (const t of range(4)) {
        loads.push(`let ${P}a${r}_${t} = ${vec.loadA4(b, rowVar(r), `${kk} + ${u32(t)}`)};`);
        for (const s of range(4)) aValue[r + s]![t] = `${P}a${r}_${t}.${COMPONENTS[s]}`;
      }
    }
  }
  if (vec.b === "n") {
    for (const c of cs.filter((c) => c % 4 === 0)) {
      for (const t of range(4)) {
        loads.push(`let ${P}b${c}_${t} = ${vec.loadB4(b, `${kk} + ${u32(t)}`, colVar(c))};`);
        for (const s of range(4)) bValue[t]![c + s] = `${P}b${c}_${t}.${COMPONENTS[s]}`;
      }
    }
  } else {
    for (const c of cs) {
      loads.push(`let ${P}b${c} = ${vec.loadB4(b, kk, colVar(c))};`);
      for (const t of range(4)) bValue[t]![c] = `${P}b${c}.${COMPONENTS[t]}`;
    }
  }
  const fmas = range(4).flatMap((t) =>
    rs.flatMap((r) => cs.map((c) => `${acc(r, c)} = fma(${aValue[r]![t]}, ${bValue[t]![c]}, ${acc(r, c)});`))
  );

  // col_base is a multiple of 4 (whole vec4 groups), so runs of four columns may be stored at once.
  const stores = tileStores(io, shape, rs.map(rowOffset), cs.map(colOffset), acc, true);

  const wgsl = `${io.declarations}

${entryHeader([v.wgX, v.wgY], g)}
  let ${P}row_base = ${P}tile_row * ${u32(rows)} + ${rowBase};
  let ${P}col_base = ${P}tile_col * ${u32(cols)} + ${P}lid.x * 4u;
${[...rowDecls, ...colDecls].join("\n")}
${rs.flatMap((r) => cs.map((c) => `  var ${acc(r, c)} = 0.0;`)).join("\n")}
  for (var ${kk} = 0u; ${kk} < ${u32(k)}; ${kk} += 4u) {
${[...loads, ...fmas].map((s) => `    ${s}`).join("\n")}
  }
${stores}
}
`;
  return matmulResult(
    name,
    shape,
    io,
    g,
    [v.wgX, v.wgY, 1],
    wgsl,
    `${variantName(v)} (a ${vec.a}, b ${vec.b}), no barriers`,
  );
}
