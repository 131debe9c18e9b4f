import { convGeometry, fmtShape, type Node, OPS, size } from "../ir/mod.ts";
import {
  bindingDecl,
  enableDirective,
  type Kernel,
  type KernelBinding,
  vectorBindingDecl,
} from "../../kernels/kernel.ts";
import { elementwiseKernel, type KernelMeta } from "../../kernels/elementwise.ts";
import { reduceKernel, rowReduceKernel } from "../../kernels/reduce.ts";
import { scatterAddKernel, scatterRowsPerThread } from "../../kernels/scatter.ts";
import { matmulKernel, type MatmulShape, type MatmulVariant } from "../../kernels/matmul.ts";
import { convGemmShape, convKernel } from "../../kernels/conv.ts";
import { vectorBlocker } from "../../kernels/matmul_vector.ts";
import {
  isHalfArena,
  libraryFor,
  type ScalarType,
  scalarType,
  storeVec4,
  storeWord,
  sumIndex,
} from "../../kernels/wgsl.ts";
import type { RowFusion } from "../passes/rows.ts";
import { Ix } from "./index.ts";
import { matmulVectorOperands, type VectorOperands } from "./matmul_vector_io.ts";
import { type KernelKind, LOWERING, type ValueContext } from "./values.ts";
import { FunctionWriter, type Location, type ValueRule } from "./functions.ts";
import { emitAttention } from "./attention.ts";
import type { LowerOptions } from "./lower.ts";
import { arenaIndex } from "./arena_offsets.ts";

/** A kernel to emit: compute `node` by its op's kernel kind, or (`copy`) write its value elsewhere. */
export interface Task {
  readonly node: Node;
  readonly kind: KernelKind;
  readonly copy: boolean;
  /** With an epilogue: the matmul or reduction computed in this kernel, whose result `node` consumes. */
  readonly fused?: Node;
  /** A row kernel: the reduction it runs per row before computing `node` (passes/rows.ts). */
  readonly row?: RowFusion;
  /** A split matmul: the column slices it stores, each where the memory plan put it. */
  parts?: readonly Node[];
  /** A fixed destination (a gradient slot); otherwise the memory plan picks one in `act`. */
  at?: Location;
  /**
   * `node` is where(c, x, y) with y the value already at `at` (entry state merged in place,
   * state_in_place.ts): the kernel writes x where c holds and leaves the rest.
   */
  writesWhere?: boolean;
  readonly reads: Node[];
}

export function emitKernel(
  task: Task,
  out: Location,
  name: string,
  location: Map<number, Location>,
  opts: LowerOptions,
): Kernel {
  const n = task.node;
  const used = new Map<string, "read" | "read_write">([[out.buffer, "read_write"]]);
  // A matmul whose operands can be read four values per load declares their buffers as vec4 arrays.
  const product = task.kind === "matmul" ? matmulProduct(task, location, opts) : undefined;
  const vectors = new Set(product?.vector ? [...product.vector.a.buffers, ...product.vector.b.buffers] : []);
  // Its result too, where four adjacent columns can be stored at once (MatmulIO.store4).
  const stores4 = product?.vector && scalarType(n.dtype) === "f32"
    ? vectorStoreTargets(task, out, location, product.shape)
    : undefined;
  for (const t of stores4 ?? []) vectors.add(t.at.buffer);
  const fns = new FunctionWriter(location, used, task.fused, vectors);
  /** A WGSL function `value_at(a0, a1, ...)` reading a reduction's input at per-axis indices. */
  const valueAt = (src: Node, accType: ScalarType) => {
    const params = src.shape.map((_, i) => [`a${i}`, "u32"] as [string, string]);
    return fns.define(
      "value_at",
      params,
      accType,
      (ctx) => ctx.at(src, Ix.axes(src.shape, params.map((p) => p[0]))),
    );
  };
  const type = scalarType(n.dtype);
  const store = (flat: string, value: string) =>
    storeWord(out.buffer, arenaIndex(out.offset, flat), value, type, vectors.has(out.buffer));
  // Generate the body first (it records the buffers used), then the bindings.
  const finish = (k: Kernel): Kernel => {
    const bindings = [...used].sort(([a], [b]) => a.localeCompare(b)).map(([buffer, access], i) => ({
      binding: i,
      buffer,
      access,
    }));
    // Library functions (erf, philox, ...) are called from the helper functions, so add them here.
    const library = libraryFor(fns.functions.join("\n"));
    const decls = bindings.map((b) => (vectors.has(b.buffer) ? vectorBindingDecl(b) : bindingDecl(b)));
    const header = [decls.join("\n"), library, ...fns.functions].filter(Boolean).join("\n\n");
    return { ...k, wgsl: `${enableDirective(bindings)}${header}\n\n${k.wgsl.trimStart()}`, bindings };
  };
  const io = { declarations: "", bindings: [] as KernelBinding[], store };
  // Bytes per element where a tensor lives: 2 in a half arena (f16 storage), else 4.
  const width = (at: Location | undefined) => (at && isHalfArena(at.buffer) ? 2 : 4);
  const readBytes = task.reads.reduce((s, r) => s + width(location.get(r.id)) * size(r.shape), 0);
  const meta = (flops: number): KernelMeta => ({
    doc: describe(n),
    ops: task.copy
      ? ["copy", ...inlineOps(n, location)]
      : task.kind === "elementwise" || task.kind === "row"
      ? inlineOps(n, location)
      : [n.op],
    flops,
    bytes: readBytes + width(out) * size(n.shape),
  });
  // A copy reads the node where it is stored (or computes it inline); a kernel computes its own op.
  const self = (ctx: ValueContext, ix: Ix) => {
    const rule = LOWERING[n.op].value as ValueRule | null;
    return task.copy || !rule ? ctx.at(n, ix) : rule(n, ix, ctx);
  };
  // A fused kernel's epilogue computes `n` at the stored element's flat index from the accumulator.
  const fusedEpilogue = (accType: string) =>
    task.fused
      ? fns.define(
        "epilogue",
        [["acc", accType], ["flat", "u32"]],
        type,
        (ctx) => self(ctx, Ix.flat(n.shape, "flat")),
      )
      : undefined;

  switch (task.kind) {
    case "elementwise": {
      if (task.writesWhere) {
        // Only the elements the condition picks: the others already hold their value (no load, no store).
        const at = (i: number, t: string) =>
          fns.define(
            i ? "fresh_at" : "picked_at",
            [["flat", "u32"]],
            t,
            (ctx) => ctx.at(n.src[i]!, Ix.flat(n.shape, "flat")),
          );
        const [picked, fresh] = [at(0, "bool"), at(1, type)];
        return finish(elementwiseKernel(name, n.shape, {
          ...io,
          value: () => `${fresh}(flat)`,
          store: (flat, v) => `if (${picked}(${flat})) { ${store(flat, v)} }`,
        }, meta(size(n.shape))));
      }
      // The kernel's own index is flat; elementwise chains and reshapes pass it through undivided.
      const f = fns.define("value_at", [["flat", "u32"]], type, (ctx) => self(ctx, Ix.flat(n.shape, "flat")));
      return finish(
        elementwiseKernel(name, n.shape, { ...io, value: () => `${f}(flat)` }, meta(size(n.shape))),
      );
    }
    case "reduce": {
      const r = task.fused ?? n;
      const src = r.src[0]!;
      const axes = (r.arg as { axes: readonly number[] }).axes;
      const accType = scalarType(r.dtype);
      const f = valueAt(src, accType);
      const op = r.op === "sum" ? "sum" : "max";
      const value = (idx: readonly string[]) => `${f}(${idx.join(", ")})`;
      // An epilogue (a norm's rsqrt(mean + eps), say) turns the reduced value into `n` before the store.
      const epilogue = fusedEpilogue(accType);
      const storeReduced = (flat: string, v: string) =>
        store(flat, epilogue ? `${epilogue}(${v}, ${flat})` : v);
      const k = reduceKernel(
        name,
        src.shape,
        axes,
        op,
        accType,
        { ...io, store: storeReduced, value },
        meta(size(src.shape)),
      );
      const ops = task.fused ? [r.op, ...inlineOps(n, location).filter((o) => o !== r.op)] : [r.op];
      return finish({ ...k, ops, doc: task.fused ? `${describe(r)}, epilogue ${describe(n)}` : describe(n) });
    }
    case "row": {
      const { result, reduce } = task.row!;
      const src = reduce.src[0]!;
      const accType = scalarType(reduce.dtype);
      const statType = scalarType(result.dtype);
      const f = valueAt(src, accType);
      // The row statistic: the reduction's epilogue chain (if any) applied to the accumulator.
      // Computed by its rule, not loaded: a kept statistic has a location but is written here.
      const statRule = LOWERING[result.op].value as ValueRule | null;
      const stat = result === reduce ? undefined : fns.define(
        "row_stat",
        [["acc", accType], ["flat", "u32"]],
        statType,
        (ctx) => statRule!(result, Ix.flat(result.shape, "flat"), ctx),
        reduce,
      );
      const kept = task.row!.keep ? location.get(result.id)! : undefined;
      if (kept) used.set(kept.buffer, "read_write");
      const value = fns.define(
        "row_value",
        [["acc", statType], ["flat", "u32"]],
        type,
        (ctx) => self(ctx, Ix.flat(n.shape, "flat")),
        result,
      );
      const k = rowReduceKernel(
        name,
        src.shape,
        (reduce.arg as { axes: readonly number[] }).axes,
        reduce.op === "sum" ? "sum" : "max",
        accType,
        size(n.shape) / size(result.shape),
        {
          ...io,
          value: (idx) => `${f}(${idx.join(", ")})`,
          finish: (acc, row) => (stat ? `${stat}(${acc}, ${row})` : acc),
          ...(kept
            ? {
              keep: (row: string, s: string) =>
                storeWord(kept.buffer, arenaIndex(kept.offset, row), s, statType),
            }
            : {}),
          store: (flat, s) => store(flat, `${value}(${s}, ${flat})`),
        },
        meta(size(src.shape) + size(n.shape)),
      );
      // The member ops, the reduction's chain included (a kept statistic has a location of its own).
      const ops = inlineOps(n, new Map([...location].filter(([id]) => id !== result.id)));
      return finish({ ...k, ops, doc: `row: ${describe(reduce)}, then ${describe(n)}` });
    }
    case "matmul": {
      const { mm, shape, variant, vector } = product!;
      const [a, b] = [mm.src[0]!, mm.src[1]!];
      const r = mm.shape.length;
      const batchShape = mm.shape.slice(0, r - 2);
      const batchAxes = (bi: string) => Ix.flat(batchShape, bi).axes();
      const ijk: [string, string][] = [["bi", "u32"], ["i", "u32"], ["j", "u32"]];
      const loadA = fns.define(
        "load_a",
        ijk,
        "f32",
        (ctx) => ctx.at(a, Ix.axes(a.shape, [...batchAxes("bi"), "i", "j"])),
      );
      const loadB = fns.define(
        "load_b",
        ijk,
        "f32",
        (ctx) => ctx.at(b, Ix.axes(b.shape, [...batchAxes("bi"), "i", "j"])),
      );
      const epilogue = fusedEpilogue("f32");
      // A split product writes column j into the slice that holds it, at its place there.
      const inParts = (
        parts: readonly Node[],
        bi: string,
        i: string,
        j: string,
        write: (at: Location, flat: string, part: Node) => string,
      ) =>
        parts.map((p, x) => {
          const start = (p.arg as { starts: readonly number[] }).starts[r - 1]!;
          const width = p.shape[r - 1]!;
          const at = location.get(p.id)!;
          used.set(at.buffer, "read_write");
          const flat = sumIndex([
            `(${bi}) * ${shape.m * width}u`,
            `(${i}) * ${width}u`,
            start ? `(${j} - ${start}u)` : j,
          ]);
          const inside = start ? `${j} >= ${start}u && ${j} < ${start + width}u` : `${j} < ${width}u`;
          return `${x ? "else " : ""}if (${inside}) { ${write(at, flat, p)} }`;
        }).join(" ");
      const storeParts = (parts: readonly Node[], bi: string, i: string, j: string, v: string) =>
        inParts(
          parts,
          bi,
          i,
          j,
          (at, flat, p) =>
            storeWord(at.buffer, arenaIndex(at.offset, flat), v, scalarType(p.dtype), vectors.has(at.buffer)),
        );
      // Four operand values in one load (MatmulVectorIO).
      const load4 = (fn: string, op: VectorOperands["a"] | VectorOperands["b"]) => {
        for (const buffer of op.buffers) if (!used.has(buffer)) used.set(buffer, "read");
        fns.raw(`fn ${fn}(bi: u32, i: u32, j: u32) -> vec4<f32> {\n${op.body("bi", "i", "j")}\n}`);
        return (bi: string, i: string, j: string) => `${fn}(${bi}, ${i}, ${j})`;
      };
      const k = matmulKernel(name, shape, {
        declarations: "",
        bindings: [],
        ...(vector
          ? {
            vector: {
              a: vector.a.mode,
              b: vector.b.mode,
              loadA4: load4("load_a4", vector.a),
              loadB4: load4("load_b4", vector.b),
            },
          }
          : {}),
        loadA: (bi, i, kk) => `${loadA}(${bi}, ${i}, ${kk})`,
        loadB: (bi, kk, j) => `${loadB}(${bi}, ${kk}, ${j})`,
        // The epilogue's inline ops, without the product it reads.
        storeOps: epilogue ? inlineOps(n, location).length - 1 : 0,
        store: (bi, i, j, v) => {
          if (task.parts) return storeParts(task.parts, bi, i, j, v);
          const flat = sumIndex([`(${bi}) * ${shape.m * shape.n}u`, `(${i}) * ${shape.n}u`, j]);
          return store(flat, epilogue ? `${epilogue}(${v}, ${flat})` : v);
        },
        ...(stores4
          ? {
            // Like `store` and `storeParts`, four columns at a time: a run of four never straddles a
            // part (their starts and widths are whole vec4s), and the epilogue runs per column.
            store4: (bi: string, i: string, j: string, vs: readonly string[]) => {
              if (task.parts) {
                return inParts(task.parts, bi, i, j, (at, flat) =>
                  storeVec4(at.buffer, arenaIndex(at.offset, flat), vs));
              }
              const flat = sumIndex([`(${bi}) * ${shape.m * shape.n}u`, `(${i}) * ${shape.n}u`, j]);
              const values = vs.map((
                v,
                t,
              ) => (epilogue ? `${epilogue}(${v}, ${t ? `(${flat} + ${t}u)` : flat})` : v));
              return storeVec4(out.buffer, arenaIndex(out.offset, flat), values);
            },
          }
          : {}),
      }, variant);
      const ops = task.fused
        ? ["matmul", ...inlineOps(n, location).filter((o) => o !== "matmul")]
        : ["matmul"];
      const doc = task.fused ? `${describe(mm)}, epilogue ${describe(n)}` : describe(n);
      return finish({ ...k, doc, ops, bytes: meta(0).bytes });
    }
    case "conv": {
      const cv = task.fused ?? n;
      const [x, w] = [cv.src[0]!, cv.src[1]!];
      const g = convGeometry(x.shape, w.shape, cv.arg as Node<"conv2d">["arg"]);
      if (typeof g === "string") throw new Error(`internal: conv2d ${g}`);
      // x and w through the value rules, so a padded, dilated or flipped view is read in place.
      const loadX = fns.define(
        "load_x",
        [["b", "u32"], ["y", "u32"], ["x", "u32"], ["c", "u32"]],
        "f32",
        (ctx) => ctx.at(x, Ix.axes(x.shape, ["b", "y", "x", "c"])),
      );
      // The implicit GEMM (shared tiles) reads w by its flat GEMM index, the direct kernel by axes.
      const variant = opts.matmulVariant(convGemmShape(g));
      const loadW = variant.kind !== "shared" ? "" : fns.define(
        "load_w",
        [["kk", "u32"], ["o", "u32"]],
        "f32",
        (ctx) => ctx.at(w, Ix.flat(w.shape, sumIndex([`kk * ${g.cout}u`, "o"]))),
      );
      const loadWAt = variant.kind === "shared" ? "" : fns.define(
        "load_w_at",
        [["p", "u32"], ["q", "u32"], ["c", "u32"], ["o", "u32"]],
        "f32",
        (ctx) => ctx.at(w, Ix.axes(w.shape, ["p", "q", "c", "o"])),
      );
      const epilogue = fusedEpilogue("f32");
      const k = convKernel(name, g, {
        declarations: "",
        bindings: [],
        loadX: (b, y, xx, c) => `${loadX}(${b}, ${y}, ${xx}, ${c})`,
        loadW: (kk, o) => `${loadW}(${kk}, ${o})`,
        loadWAt: (p, q, c, o) => `${loadWAt}(${p}, ${q}, ${c}, ${o})`,
        store: (flat, v) => store(flat, epilogue ? `${epilogue}(${v}, ${flat})` : v),
        storeOps: epilogue ? inlineOps(n, location).length - 1 : 0,
      }, variant);
      const ops = task.fused
        ? ["conv2d", ...inlineOps(n, location).filter((o) => o !== "conv2d")]
        : ["conv2d"];
      const doc = task.fused ? `${describe(cv)}, epilogue ${describe(n)}` : describe(n);
      return finish({ ...k, doc: `${doc}; ${k.doc}`, ops, bytes: meta(0).bytes });
    }
    case "scatter": {
      const [index, updates] = [n.src[0]!, n.src[1]!];
      const rows = n.shape[0]!;
      const cols = size(n.shape.slice(1));
      const count = size(index.shape);
      const fi = fns.define(
        "scatter_index",
        [["i", "u32"]],
        "i32",
        (ctx) => `i32(${ctx.at(index, Ix.flat(index.shape, "i"))})`,
      );
      const fu = fns.define(
        "scatter_update",
        [["i", "u32"], ["c", "u32"]],
        type,
        (ctx) => ctx.at(updates, Ix.flat(updates.shape, sumIndex([`i * ${cols}u`, "c"]))),
      );
      const k = scatterAddKernel(
        name,
        rows,
        cols,
        count,
        type,
        {
          ...io,
          index: (i) => `${fi}(${i})`,
          update: (i, c) => `${fu}(${i}, ${c})`,
        },
        meta(rows * cols * count),
        scatterRowsPerThread(opts.adapterClass ?? "cpu", rows),
      );
      return finish(k);
    }
    case "attention":
    case "attention_grad_q":
    case "attention_grad_kv":
      return finish(emitAttention(name, n, task.kind, out, fns, opts.attentionVariant));
  }
}

/** The product a matmul kernel computes, its variant, and (vector variant only) its vec4 operands. */
function matmulProduct(task: Task, location: ReadonlyMap<number, Location>, opts: LowerOptions): {
  mm: Node;
  shape: MatmulShape;
  variant: MatmulVariant;
  vector: VectorOperands | undefined;
} {
  const mm = task.fused ?? task.node;
  const r = mm.shape.length;
  const shape: MatmulShape = {
    batch: size(mm.shape.slice(0, r - 2)),
    m: mm.shape[r - 2]!,
    n: mm.shape[r - 1]!,
    k: mm.src[0]!.shape[r - 1]!,
  };
  const variant = opts.matmulVariant(shape);
  const vector = variant.kind === "vector" ? matmulVectorOperands(mm, location) : undefined;
  // Where the kernel would fall back to scalar loads anyway (its tiles), keep the scalar declarations.
  const modes = vector && { a: vector.a.mode, b: vector.b.mode, loadA4: unused, loadB4: unused };
  const runs = variant.kind === "vector" && modes &&
    !vectorBlocker(shape, {
      declarations: "",
      bindings: [],
      loadA: unused,
      loadB: unused,
      store: unused,
      vector: modes,
    }, variant);
  return { mm, shape, variant, vector: runs ? vector : undefined };
}

const unused = () => "";

/**
 * Where a vector product's result goes when four adjacent columns may be written in one vec4 store:
 * its location, or each part's for a split product (column range start .. start + width), all at
 * offsets, starts and widths that are whole vec4s outside the half arenas. Else undefined.
 */
function vectorStoreTargets(
  task: Task,
  out: Location,
  location: ReadonlyMap<number, Location>,
  shape: MatmulShape,
): { at: Location; start: number; width: number }[] | undefined {
  if (shape.n % 4) return undefined;
  const targets = task.parts
    ? task.parts.map((p) => ({
      at: location.get(p.id)!,
      start: (p.arg as { starts: readonly number[] }).starts.at(-1)!,
      width: p.shape.at(-1)!,
    }))
    : [{ at: out, start: 0, width: shape.n }];
  const whole = targets.every(({ at, start, width }) =>
    at && !isHalfArena(at.buffer) && at.offset % 4 === 0 && start % 4 === 0 && width % 4 === 0
  );
  return whole ? targets : undefined;
}

function describe(n: Node): string {
  const srcs = n.src.map((s) => `${s.dtype}${fmtShape(s.shape)}`).join(", ");
  return `${n.op}(${srcs}) -> ${n.dtype}${fmtShape(n.shape)}${n.site ? `  @ ${n.site}` : ""}`;
}

/** The ops a copy/elementwise kernel evaluates inline, for `explain`. */
function inlineOps(n: Node, location: Map<number, Location>): string[] {
  const ops: string[] = [n.op];
  const stack = [...n.src];
  while (stack.length) {
    const m = stack.pop()!;
    if (location.has(m.id) || OPS[m.op].kind === "leaf" && m.op !== "const" && m.op !== "iota") continue;
    ops.push(m.op);
    if (["matmul", "conv", "reduce"].includes(LOWERING[m.op].kernel ?? "")) continue; // an epilogue's accumulator
    stack.push(...m.src);
  }
  return ops;
}
