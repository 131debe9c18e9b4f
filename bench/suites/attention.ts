/**
 * Span-aware flash attention against the naive materialized path, forward + backward at T = 256,
 * 1024 and 4096 (bench/attention_bench.ts measures both in one process: time and buffer bytes),
 * and the fraction of tiles the flash kernels skip for a Transfusion layout with two images.
 */
import { parseArgs } from "node:util";
import { buildLayout } from "../../spec/layout_builder.ts";
import { type MaskExpr, tileStats } from "../../compiler/ir/mod.ts";
import { defaultAttentionVariant, variantBlocks } from "../../kernels/flash_attention.ts";
import { report, type SuiteResult } from "../main.ts";

parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });
const { ATTENTION_TABLE } = await import("../attention_bench.ts");

// sameDocument & (causal | sameSpan(image)) on rows holding a caption and two 16x16-patch images.
const TRANSFUSION: MaskExpr = {
  kind: "and",
  a: { kind: "sameDocument" },
  b: { kind: "or", a: { kind: "causal" }, b: { kind: "sameSpan", modality: 1 } },
};
const rows: SuiteResult["rows"] = ATTENTION_TABLE.rows.map((r) =>
  Object.fromEntries(
    ATTENTION_TABLE.header.map((h, i) => [h, Number.isNaN(Number(r[i])) ? r[i]! : Number(r[i])]),
  )
);
const notes = [`flash variant ${ATTENTION_TABLE.variant}`];
const ratios: Record<string, number> = {};
for (const t of [256, 1024, 4096]) {
  const side = Math.floor(Math.sqrt((t - 40) / 2 - 2));
  const text = Math.max(1, t - 2 * (side * side + 2) - 8);
  const layout = buildLayout([[
    { kind: "text", length: Math.floor(text / 2), doc: 0 },
    { kind: "image", rows: side, cols: side, doc: 0 },
    { kind: "text", length: Math.ceil(text / 2), doc: 0 },
    { kind: "image", rows: side, cols: side, doc: 0 },
  ]], t);
  const v = defaultAttentionVariant("cpu", { batch: 1, heads: 4, t, s: t, d: 64 });
  const { blockQ, blockK } = variantBlocks(v);
  const stats = tileStats(TRANSFUSION, layout.fields, 1, t, blockQ, blockK);
  notes.push(
    `T=${t}, two ${side}x${side} images: ${stats.tiles} tiles of ${blockQ}x${blockK}: ${stats.skipped} skipped ` +
      `(${
        (100 * stats.skipped / stats.tiles).toFixed(1)
      }%), ${stats.full} fully visible, ${stats.partial} partial`,
  );
}
const num = (row: Record<string, number | string>, k: string) => Number(row[k]);
for (const t of ["256", "1024", "4096"]) {
  const flash = rows.find((r) => String(r.T) === t && r.path === "flash");
  const naive = rows.find((r) => String(r.T) === t && r.path === "materialized");
  if (flash && naive) {
    ratios[`T=${t} time, materialized / flash`] = num(naive, "total ms") / num(flash, "total ms");
    ratios[`T=${t} memory, materialized / flash`] = num(naive, "MiB") / num(flash, "MiB");
  }
}
report({ suite: "attention", rows, ratios, notes });
