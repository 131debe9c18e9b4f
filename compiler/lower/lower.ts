import { fmtShape, type Node, OPS, size, toposort } from "../ir/mod.ts";
import { bindingDecl, type Kernel, type KernelBinding } from "../../kernels/kernel.ts";
import { elementwiseKernel, type KernelMeta } from "../../kernels/elementwise.ts";
import { reduceKernel } from "../../kernels/reduce.ts";
import { scatterAddKernel } from "../../kernels/scatter.ts";
import { matmulKernel, type MatmulShape, type MatmulVariant } from "../../kernels/matmul.ts";
import type { AttentionShape, AttentionVariant } from "../../kernels/flash_attention.ts";
import { libraryFor, loadWord, scalarType, storeWord, sumIndex } from "../../kernels/wgsl.ts";
import type { Step, TensorSlot } from "../plan.ts";
import { Ix } from "./index.ts";
import { arenaName, planMemory } from "./memory.ts";
import { type KernelKind, LOWERING, type ValueContext } from "./values.ts";
import { emitAttention } from "./attention.ts";
import { chooseMaterialized } from "../passes/fusion.ts";
import { scheduleTasks } from "../passes/schedule.ts";

/** Where a stored tensor lives: a word offset in a named arena. */
export interface Location {
  readonly buffer: string;
  readonly offset: number;
}

export interface EntryGraph {
  /** Tensors read back to the host after the step (they live in `act`). */
  readonly outputs: readonly { name: string; node: Node }[];
  readonly inputs: readonly Node<"input">[];
  /** Tensors written to a fixed place (gradients into `grads`). */
  readonly placed: readonly { node: Node; at: Location }[];
  /** Fixed places of leaves: parameters in `params`. */
  readonly leaves: ReadonlyMap<number, Location>;
}

export interface LowerOptions {
  readonly prefix: string;
  /** Fuse elementwise work into its readers and matmul epilogues (default); false: one kernel per op. */
  readonly fuse?: boolean;
  readonly matmulVariant: (shape: MatmulShape) => MatmulVariant;
  readonly attentionVariant: (shape: AttentionShape) => AttentionVariant;
  /** Words at the bottom of `act` that this entry must not use. */
  readonly reservedWords?: number;
  /** The most words one activation arena may hold (the adapter's storage binding limit). */
  readonly arenaWords?: number;
}

export interface LoweredEntry {
  readonly kernels: Kernel[];
  readonly steps: Step[];
  readonly inputs: TensorSlot[];
  readonly outputs: TensorSlot[];
  /** Words each activation arena (`act`, `act1`, ...) needs at the peak. */
  readonly arenaWords: readonly number[];
}

/** A kernel to emit: compute `node` by its op's kernel kind, or (`copy`) write its value elsewhere. */
interface Task {
  readonly node: Node;
  readonly kind: KernelKind;
  readonly copy: boolean;
  /** With an epilogue: the matmul or reduction computed in this kernel, whose result `node` consumes. */
  readonly fused?: Node;
  /** A fixed destination (a gradient slot); otherwise the memory plan picks one in `act`. */
  at?: Location;
  readonly reads: Node[];
}

const TASK_ID = 1 << 30;

/**
 * The first lowering: every op that needs memory (elementwise, reduction, matmul, gather, scatter)
 * becomes one kernel; views, constants, iota and RNG are computed inline by their consumers.
 */
export function lowerEntry(graph: EntryGraph, opts: LowerOptions): LoweredEntry {
  const roots = [...graph.outputs.map((o) => o.node), ...graph.placed.map((p) => p.node)];
  const order = toposort(roots);
  const { stored, epilogues } = chooseMaterialized(order, new Set(roots.map((r) => r.id)), opts.fuse ?? true);
  const location = new Map<number, Location>(graph.leaves);
  const isStored = (n: Node) => location.has(n.id) || n.op === "input" || stored.has(n.id);

  // Reads of a kernel: the stored tensors its inline value reaches.
  const readsOf = (start: readonly Node[]): Node[] => {
    const found = new Map<number, Node>();
    const stack = [...start];
    while (stack.length) {
      const n = stack.pop()!;
      if (isStored(n)) found.set(n.id, n);
      else stack.push(...n.src);
    }
    return [...found.values()];
  };

  const tasks: Task[] = [];
  const producer = new Map<number, Task>();
  for (const n of order) {
    // A stored view (fusion found its inline cost too high for its readers) is an elementwise kernel.
    if (!stored.has(n.id)) continue;
    const kind = LOWERING[n.op].kernel ?? "elementwise";
    const fused = epilogues.get(n.id);
    const task: Task = fused
      ? {
        node: n,
        kind: LOWERING[fused.op].kernel!,
        copy: false,
        fused,
        reads: readsOf([...fused.src, ...n.src]).filter((r) => r !== fused),
      }
      : { node: n, kind, copy: false, reads: readsOf(n.src) };
    tasks.push(task);
    producer.set(n.id, task);
  }
  const copy = (node: Node, at?: Location): Task => {
    const task: Task = { node, kind: "elementwise", copy: true, reads: readsOf([node]) };
    if (at) task.at = at;
    tasks.push(task);
    return task;
  };

  // Place gradients: the producing kernel writes straight into `grads` when the value is a plain
  // (possibly reshaped) kernel result not placed yet; otherwise a copy kernel writes it there.
  for (const { node, at } of graph.placed) {
    let base = node;
    while (base.op === "reshape") base = base.src[0]!;
    const p = producer.get(base.id);
    if (p && p.at === undefined && size(base.shape) === size(node.shape)) p.at = at;
    else copy(node, at);
  }
  // Outputs that are not kernel results in `act` (a view, a constant, a placed tensor) get a copy.
  const outputTask = new Map<string, Task | Node<"input">>();
  for (const { name, node } of graph.outputs) {
    const p = producer.get(node.id);
    if (node.op === "input") outputTask.set(name, node as Node<"input">);
    else if (p && p.at === undefined) outputTask.set(name, p);
    else outputTask.set(name, copy(node));
  }

  // Run order: a memory-aware topological order of the kernels (see passes/schedule.ts).
  {
    const index = new Map(tasks.map((t, i) => [t, i]));
    const producerIndex = new Map<number, number>();
    tasks.forEach((t, i) => !t.copy && producerIndex.set(t.node.id, i));
    const order = scheduleTasks(tasks.map((t) => ({
      deps: t.reads.flatMap((r) => (producerIndex.has(r.id) ? [producerIndex.get(r.id)!] : [])),
      words: t.at ? 0 : size(t.node.shape),
    })));
    const sorted = order.map((i) => tasks[i]!);
    tasks.splice(0, tasks.length, ...sorted);
    void index;
  }

  // Memory plan for everything in `act`: inputs, then kernel results without a fixed place.
  const lastRead = new Map<number, number>();
  tasks.forEach((task, k) => task.reads.forEach((r) => lastRead.set(r.id, k)));
  const pinned = new Set([...outputTask.values()].filter((t) => "kind" in t && !("op" in t)));
  const lifetimes = [
    ...graph.inputs.map((n) => ({
      id: n.id,
      words: size(n.shape),
      start: -1,
      // An input that is also an output must survive to the read-back.
      end: graph.outputs.some((o) => o.node === n) ? Infinity : lastRead.get(n.id) ?? -1,
    })),
    ...tasks.flatMap((t, k) =>
      t.at !== undefined ? [] : [{
        id: TASK_ID + k,
        words: size(t.node.shape),
        start: k,
        end: pinned.has(t) ? Infinity : t.copy ? k : lastRead.get(t.node.id) ?? k,
      }]
    ),
  ];
  const memory = planMemory(lifetimes, opts.reservedWords ?? 0, opts.arenaWords ?? Infinity);
  const arenaLocation = (id: number): Location => {
    const at = memory.offsets.get(id)!;
    return { buffer: arenaName(at.arena), offset: at.offset };
  };
  const target = (k: number): Location => tasks[k]!.at ?? arenaLocation(TASK_ID + k);
  for (const n of graph.inputs) location.set(n.id, arenaLocation(n.id));
  tasks.forEach((t, k) => {
    if (!t.copy) location.set(t.node.id, target(k));
  });

  const kernels = tasks.map((task, k) =>
    emitKernel(task, target(k), `${opts.prefix}${k}_${task.copy ? "copy" : task.node.op}`, location, opts)
  );
  const slot = (name: string, n: Node, at: Location): TensorSlot => ({
    name,
    shape: n.shape,
    dtype: n.dtype,
    buffer: at.buffer,
    offset: at.offset,
  });
  return {
    kernels,
    steps: kernels.map((_, i) => ({ kind: "dispatch", kernel: i })),
    inputs: graph.inputs.map((n) => slot(n.arg.name, n, location.get(n.id)!)),
    outputs: [...outputTask].map(([name, t]) =>
      "op" in t ? slot(name, t, location.get(t.id)!) : slot(name, t.node, target(tasks.indexOf(t)))
    ),
    arenaWords: memory.arenaWords,
  };
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
  const fns = new FunctionWriter(location, used, task.fused);
  const type = scalarType(n.dtype);
  const store = (flat: string, value: string) =>
    storeWord(out.buffer, sumIndex([`${out.offset}u`, flat]), value, type);
  // Generate the body first (it records the buffers used), then the bindings.
  const finish = (k: Kernel): Kernel => {
    const bindings = [...used].sort(([a], [b]) => a.localeCompare(b)).map(([buffer, access], i) => ({
      binding: i,
      buffer,
      access,
    }));
    // Library functions (erf, philox, ...) are called from the helper functions, so add them here.
    const library = libraryFor(fns.functions.join("\n"));
    const header = [bindings.map(bindingDecl).join("\n"), library, ...fns.functions].filter(Boolean).join(
      "\n\n",
    );
    return { ...k, wgsl: `${header}\n\n${k.wgsl.trimStart()}`, bindings };
  };
  const io = { declarations: "", bindings: [] as KernelBinding[], store };
  const readBytes = task.reads.reduce((s, r) => s + 4 * size(r.shape), 0);
  const meta = (flops: number): KernelMeta => ({
    doc: describe(n),
    ops: task.copy
      ? ["copy", ...inlineOps(n, location)]
      : task.kind === "elementwise"
      ? inlineOps(n, location)
      : [n.op],
    flops,
    bytes: readBytes + 4 * size(n.shape),
  });
  // A copy reads the node where it is stored (or computes it inline); a kernel computes its own op.
  const self = (ctx: ValueContext, ix: Ix) => {
    const rule = LOWERING[n.op].value as ValueRule | null;
    return task.copy || !rule ? ctx.at(n, ix) : rule(n, ix, ctx);
  };

  switch (task.kind) {
    case "elementwise": {
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
      const params = src.shape.map((_, i) => [`a${i}`, "u32"] as [string, string]);
      const f = fns.define(
        "value_at",
        params,
        accType,
        (ctx) => ctx.at(src, Ix.axes(src.shape, params.map((p) => p[0]))),
      );
      const op = r.op === "sum" ? "sum" : "max";
      const value = (idx: readonly string[]) => `${f}(${idx.join(", ")})`;
      // An epilogue (a norm's rsqrt(mean + eps), say) turns the reduced value into `n` before the store.
      const epilogue = task.fused
        ? fns.define(
          "epilogue",
          [["acc", accType], ["flat", "u32"]],
          type,
          (ctx) => self(ctx, Ix.flat(n.shape, "flat")),
        )
        : undefined;
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
    case "matmul": {
      const mm = task.fused ?? n;
      const [a, b] = [mm.src[0]!, mm.src[1]!];
      const r = mm.shape.length;
      const batchShape = mm.shape.slice(0, r - 2);
      const shape: MatmulShape = {
        batch: size(batchShape),
        m: mm.shape[r - 2]!,
        n: mm.shape[r - 1]!,
        k: a.shape[r - 1]!,
      };
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
      // The epilogue computes `n` at the stored element's flat index from the accumulator `acc`.
      const epilogue = task.fused
        ? fns.define(
          "epilogue",
          [["acc", "f32"], ["flat", "u32"]],
          type,
          (ctx) => self(ctx, Ix.flat(n.shape, "flat")),
        )
        : undefined;
      const k = matmulKernel(name, shape, {
        declarations: "",
        bindings: [],
        loadA: (bi, i, kk) => `${loadA}(${bi}, ${i}, ${kk})`,
        loadB: (bi, kk, j) => `${loadB}(${bi}, ${kk}, ${j})`,
        store: (bi, i, j, v) => {
          const flat = sumIndex([`(${bi}) * ${shape.m * shape.n}u`, `(${i}) * ${shape.n}u`, j]);
          return store(flat, epilogue ? `${epilogue}(${v}, ${flat})` : v);
        },
      }, opts.matmulVariant(shape));
      const ops = task.fused
        ? ["matmul", ...inlineOps(n, location).filter((o) => o !== "matmul")]
        : ["matmul"];
      const doc = task.fused ? `${describe(mm)}, epilogue ${describe(n)}` : describe(n);
      return finish({ ...k, doc, ops, bytes: meta(0).bytes });
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
      const k = scatterAddKernel(name, rows, cols, count, type, {
        ...io,
        index: (i) => `${fi}(${i})`,
        update: (i, c) => `${fu}(${i}, ${c})`,
      }, meta(rows * cols * count));
      return finish(k);
    }
    case "attention":
    case "attention_grad_q":
    case "attention_grad_kv":
      return finish(emitAttention(name, n, task.kind, out, fns, opts.attentionVariant));
  }
}

type ValueRule = (n: Node, ix: Ix, ctx: ValueContext) => string;

/**
 * Writes the WGSL helper functions a kernel reads its inputs through. Inside one function every
 * value is bound once to a `let` (keyed by node and index), so a tensor read twice by an inlined
 * expression is loaded and computed once, and the text grows with the graph, not with its paths.
 */
export class FunctionWriter {
  readonly functions: string[] = [];

  constructor(
    private readonly location: ReadonlyMap<number, Location>,
    private readonly used: Map<string, "read" | "read_write">,
    /** The matmul whose value is the epilogue's `acc` parameter. */
    private readonly accumulator: Node | undefined,
  ) {}

  /** Adds a function written by hand (one that loops, for instance). */
  raw(text: string): void {
    this.functions.push(text);
  }

  define(
    name: string,
    params: readonly [string, string][],
    ret: string,
    body: (ctx: ValueContext) => string,
  ): string {
    const lines: string[] = [];
    const memo = new Map<string, string>();
    const bind = (key: string, expr: string) => {
      let v = memo.get(key);
      if (v === undefined) {
        v = `v${memo.size}`;
        lines.push(`  let ${v} = ${expr};`);
        memo.set(key, v);
      }
      return v;
    };
    const ctx: ValueContext = {
      at: (m, ix) => {
        if (m === this.accumulator) return "acc";
        const key = `${m.id}@${ix.key()}`;
        const at = this.location.get(m.id);
        if (at) {
          if (!this.used.has(at.buffer)) this.used.set(at.buffer, "read");
          return bind(key, loadWord(at.buffer, sumIndex([`${at.offset}u`, ix.flat()]), scalarType(m.dtype)));
        }
        const rule = LOWERING[m.op].value as ValueRule | null;
        if (!rule) {
          throw new Error(`internal: ${m.op} ${fmtShape(m.shape)} must be stored but has no location`);
        }
        if (m.op === "const") return rule(m, ix, ctx);
        return memo.get(key) ?? bind(key, rule(m, ix, ctx));
      },
    };
    const result = body(ctx);
    const signature = params.map(([p, t]) => `${p}: ${t}`).join(", ");
    this.functions.push(`fn ${name}(${signature}) -> ${ret} {\n${lines.join("\n")}\n  return ${result};\n}`);
    return name;
  }
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
    if (LOWERING[m.op].kernel === "matmul" || LOWERING[m.op].kernel === "reduce") continue; // an epilogue's accumulator
    stack.push(...m.src);
  }
  return ops;
}
