import type { AttentionArg, LayoutField, Node } from "../ir/mod.ts";
import type { Kernel } from "../../kernels/kernel.ts";
import {
  type AttentionShape,
  type AttentionVariant,
  flashAttentionBackwardKV,
  flashAttentionBackwardQ,
  flashAttentionForward,
} from "../../kernels/flash_attention.ts";
import { maskPredicateWgsl, tileClassWgsl } from "../../kernels/mask_wgsl.ts";
import { storeWord } from "../../kernels/wgsl.ts";
import { Ix } from "./index.ts";
import type { FunctionWriter, Location } from "./functions.ts";
import { arenaIndex } from "./arena_offsets.ts";

type Kind = "attention" | "attention_grad_q" | "attention_grad_kv";

/**
 * The flash-attention kernels of one attention op. q, k, v (and dO) are read through generated
 * functions, so their producers (RoPE, head split views) run inside the kernel's loads; the mask
 * rule becomes WGSL over the layout fields, and tiles are classified from per-tile field ranges so
 * that fully masked tiles are skipped and fully visible ones skip the predicate.
 */
export function emitAttention(
  name: string,
  n: Node,
  kind: Kind,
  out: Location,
  fns: FunctionWriter,
  variantFor: (shape: AttentionShape) => AttentionVariant,
): Kernel {
  const arg = n.arg as AttentionArg;
  const [q, k, v] = [n.src[0]!, n.src[1]!, n.src[2]!];
  const extra = kind === "attention" ? 0 : 3;
  const fieldNodes = n.src.slice(3 + extra);
  const [batch, heads, t, d] = q.shape as [number, number, number, number];
  const s = k.shape[2]!;
  const shape: AttentionShape = { batch, heads, t, s, d };
  const offset = s - t; // query i sits at key position i + offset

  const bhid: [string, string][] = [["b", "u32"], ["h", "u32"], ["i", "u32"], ["d", "u32"]];
  const tensor = (fn: string, x: Node) =>
    fns.define(fn, bhid, "f32", (ctx) => ctx.at(x, Ix.axes(x.shape, ["b", "h", "i", "d"])));
  const loadQ = tensor("load_q", q);
  const loadK = tensor("load_k", k);
  const loadV = tensor("load_v", v);
  const field = new Map<LayoutField, string>();
  arg.fields.forEach((f, idx) => {
    const node = fieldNodes[idx]!;
    field.set(
      f,
      fns.define(
        `field_${f}`,
        [["b", "u32"], ["p", "u32"]],
        "i32",
        (ctx) => ctx.at(node, Ix.axes(node.shape, ["b", "p"])),
      ),
    );
  });
  const fieldAt = (f: LayoutField, b: string, p: string) => {
    const fn = field.get(f);
    if (!fn) {
      throw new Error(`internal: the mask reads layout field ${f}, which the attention op does not carry`);
    }
    return `${fn}(${b}, ${p})`;
  };
  const qpos = `(i + ${offset}u)`;
  fns.raw(`fn allowed(b: u32, i: u32, j: u32) -> bool {
  return ${
    maskPredicateWgsl(arg.mask, { index: qpos, field: (f) => fieldAt(f, "b", qpos) }, {
      index: "j",
      field: (f) => fieldAt(f, "b", "j"),
    })
  };
}`);
  fns.raw(tileClassFunction(arg, offset, fieldAt));

  const io = {
    declarations: "",
    bindings: [],
    loadQ: (b: string, h: string, i: string, dd: string) => `${loadQ}(${b}, ${h}, ${i}, ${dd})`,
    loadK: (b: string, h: string, j: string, dd: string) => `${loadK}(${b}, ${h}, ${j}, ${dd})`,
    loadV: (b: string, h: string, j: string, dd: string) => `${loadV}(${b}, ${h}, ${j}, ${dd})`,
    allowed: (b: string, i: string, j: string) => `allowed(${b}, ${i}, ${j})`,
    tileClass: (b: string, i0: string, i1: string, j0: string, j1: string) =>
      `tile_class(${b}, ${i0}, ${i1}, ${j0}, ${j1})`,
  };
  const at = (index: string) => arenaIndex(out.offset, index);
  const store = (index: string, value: string) => storeWord(out.buffer, at(index), value, "f32");
  const row = (b: string, h: string, i: string, len: number) =>
    `(((${b}) * ${heads}u + (${h})) * ${len}u + (${i}))`;
  const variant = variantFor(shape);

  if (kind === "attention") {
    return flashAttentionForward(
      name,
      shape,
      {
        ...io,
        storeO: (b, h, i, dd, value) => store(`${row(b, h, i, t)} * ${d + 1}u + (${dd})`, value),
        storeLse: (b, h, i, value) => store(`${row(b, h, i, t)} * ${d + 1}u + ${d}u`, value),
      },
      variant,
      arg.scale,
    );
  }
  const [lse, dO, delta] = [n.src[3]!, n.src[4]!, n.src[5]!];
  const loadDO = tensor("load_do", dO);
  const bhi: [string, string][] = [["b", "u32"], ["h", "u32"], ["i", "u32"]];
  const loadLse = fns.define(
    "load_lse",
    bhi,
    "f32",
    (ctx) => ctx.at(lse, Ix.axes(lse.shape, ["b", "h", "i"])),
  );
  const loadDelta = fns.define(
    "load_delta",
    bhi,
    "f32",
    (ctx) => ctx.at(delta, Ix.axes(delta.shape, ["b", "h", "i"])),
  );
  const backward = {
    ...io,
    loadDO: (b: string, h: string, i: string, dd: string) => `${loadDO}(${b}, ${h}, ${i}, ${dd})`,
    loadLse: (b: string, h: string, i: string) => `${loadLse}(${b}, ${h}, ${i})`,
    loadDelta: (b: string, h: string, i: string) => `${loadDelta}(${b}, ${h}, ${i})`,
    storeDQ: (b: string, h: string, i: string, dd: string, value: string) =>
      store(`${row(b, h, i, t)} * ${d}u + (${dd})`, value),
    storeDK: (b: string, h: string, j: string, dd: string, value: string) =>
      store(`${row(b, h, j, s)} * ${2 * d}u + (${dd})`, value),
    storeDV: (b: string, h: string, j: string, dd: string, value: string) =>
      store(`${row(b, h, j, s)} * ${2 * d}u + ${d}u + (${dd})`, value),
  };
  return kind === "attention_grad_q"
    ? flashAttentionBackwardQ(name, shape, backward, variant, arg.scale)
    : flashAttentionBackwardKV(name, shape, backward, variant, arg.scale);
}

/**
 * tile_class(b, i0, i1, j0, j1): the min and max of every field the mask reads over the query rows
 * [i0, i1] and key rows [j0, j1] (a loop over the tile's positions, small next to the tile's
 * blockQ x blockK x D work), then the mask's three-valued class for those ranges.
 */
function tileClassFunction(
  arg: AttentionArg,
  offset: number,
  fieldAt: (f: LayoutField, b: string, p: string) => string,
): string {
  const lines: string[] = [];
  for (const side of ["q", "k"] as const) {
    const [first, last] = side === "q" ? [`i0 + ${offset}u`, `i1 + ${offset}u`] : ["j0", "j1"];
    for (const f of arg.fields) {
      lines.push(`  var ${side}_min_${f} = 2147483647i;`, `  var ${side}_max_${f} = -2147483647i - 1i;`);
    }
    if (arg.fields.length) {
      lines.push(`  for (var p = ${first}; p <= ${last}; p++) {`);
      for (const f of arg.fields) {
        lines.push(
          `    let ${side}_${f} = ${fieldAt(f, "b", "p")};`,
          `    ${side}_min_${f} = min(${side}_min_${f}, ${side}_${f});`,
          `    ${side}_max_${f} = max(${side}_max_${f}, ${side}_${f});`,
        );
      }
      lines.push("  }");
    }
  }
  const ranges = (side: "q" | "k", first: string, last: string) => ({
    first,
    last,
    min: (f: LayoutField) => `${side}_min_${f}`,
    max: (f: LayoutField) => `${side}_max_${f}`,
  });
  const cls = tileClassWgsl(
    arg.mask,
    ranges("q", `(i0 + ${offset}u)`, `(i1 + ${offset}u)`),
    ranges("k", "j0", "j1"),
  );
  return `fn tile_class(b: u32, i0: u32, i1: u32, j0: u32, j1: u32) -> u32 {\n${
    lines.join("\n")
  }\n  return ${cls};\n}`;
}
