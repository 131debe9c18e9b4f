import { type Node, size, toposort } from "../ir/mod.ts";
import type { Kernel } from "../../kernels/kernel.ts";
import type { AdapterClass, MatmulShape, MatmulVariant } from "../../kernels/matmul.ts";
import type { AttentionShape, AttentionVariant } from "../../kernels/flash_attention.ts";
import type { Step, TensorSlot } from "../plan.ts";
import { arenaName, halfArenaName, type Lifetime, planMemory } from "./memory.ts";
import { LOWERING } from "./values.ts";
import type { Location } from "./functions.ts";
import { emitKernel, type Task } from "./emit.ts";
import { bindArenaOffsets } from "../../kernels/arena_offsets.ts";
import { chooseMaterialized, onlyFlatPaths } from "../passes/fusion.ts";
import type { RowFusion } from "../passes/rows.ts";
import { scheduleTasks } from "../passes/schedule.ts";
import { readsOnlyAt, stateWritersInPlace } from "./state_in_place.ts";
import { joinPieces } from "../passes/pieces.ts";
import { mergeContractions } from "../passes/contractions.ts";
import { pointwiseConvsAsMatmuls } from "../passes/pointwise_conv.ts";
import { splitLongReductions } from "../passes/split_reductions.ts";
import { verify } from "../verify.ts";

export type { Location } from "./functions.ts";

export interface EntryGraph {
  /** Tensors read back to the host after the step (they live in `act`). */
  readonly outputs: readonly { name: string; node: Node }[];
  readonly inputs: readonly Node<"input">[];
  /** Tensors written to a fixed place (gradients into `grads`). */
  readonly placed: readonly { node: Node; at: Location }[];
  /** Fixed places of leaves: parameters in `params`. */
  readonly leaves: ReadonlyMap<number, Location>;
  /**
   * Entry state: output `name` is the new value of the leaf `input` (its slot in `leaves`). Where
   * its kernels can write it into the slot in place (state_in_place.ts), the output is the slot.
   */
  readonly state?: readonly { name: string; input: Node }[];
}

export interface LowerOptions {
  readonly prefix: string;
  /** Fuse elementwise work into its readers and matmul epilogues (default); false: one kernel per op. */
  readonly fuse?: boolean;
  readonly matmulVariant: (shape: MatmulShape) => MatmulVariant;
  readonly attentionVariant: (shape: AttentionShape) => AttentionVariant;
  /** The adapter class kernels without a tuned variant are shaped for (scatter-add blocks); default cpu. */
  readonly adapterClass?: AdapterClass;
  /** Words at the bottom of `act` that this entry must not use. */
  readonly reservedWords?: number;
  /** The most words one activation arena may hold (the adapter's storage binding limit). */
  readonly arenaWords?: number;
  /** Let elementwise kernels write over an input that dies with them (default: with `fuse`). */
  readonly inPlace?: boolean;
  /** Activation storage precision (default f32); "f16": see the f16 policy in `lowerEntry`. */
  readonly storage?: "f32" | "f16";
}

export interface LoweredEntry {
  readonly kernels: Kernel[];
  readonly steps: Step[];
  readonly inputs: TensorSlot[];
  readonly outputs: TensorSlot[];
  /** Words each activation arena (`act`, `act1`, ...) needs at the peak. */
  readonly arenaWords: readonly number[];
  /** Words (two f16 elements each) each half arena (`half`, `half1`, ...) needs; empty with f32 storage. */
  readonly halfWords: readonly number[];
}

/**
 * Below this many elements a float activation stays f32 under f16 storage: losses, metrics and
 * other tiny tensors cost nothing to keep exact, and they are the values a person reads.
 */
export const HALF_MIN_ELEMENTS = 64;

const TASK_ID = 1 << 30;
const STAT_ID = 3 << 29;

/**
 * The first lowering: every op that needs memory (elementwise, reduction, matmul, gather, scatter)
 * becomes one kernel; views, constants, iota and RNG are computed inline by their consumers.
 */
export function lowerEntry(graph: EntryGraph, opts: LowerOptions): LoweredEntry {
  // A 1x1 conv is a matmul: rewritten first, so fusion and the contraction merges see a matmul.
  graph = rewriteGraph(graph, pointwiseConvsAsMatmuls);
  if (opts.fuse ?? true) {
    graph = rewriteGraph(
      graph,
      (roots) => splitLongReductions(joinPieces(mergeContractions(roots)), opts.adapterClass ?? "cpu"),
    );
  }
  const roots = [...graph.outputs.map((o) => o.node), ...graph.placed.map((p) => p.node)];
  const order = toposort(roots);
  const { stored, epilogues, rows, splits } = chooseMaterialized(
    order,
    new Set(roots.map((r) => r.id)),
    opts.fuse ?? true,
  );
  const location = new Map<number, Location>(graph.leaves);
  const rowStats = new Set([...rows.values()].filter((r) => r.keep).map((r) => r.result.id));
  // Column slices a split matmul kernel stores itself (see Materialization.splits).
  const sliceParts = new Set([...splits.values()].flatMap((parts) => parts.map((p) => p.id)));
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
    // A row statistic that is also stored is written by its row kernel, not a kernel of its own.
    if (!stored.has(n.id) || rowStats.has(n.id) || sliceParts.has(n.id)) continue;
    const kind = LOWERING[n.op].kernel ?? "elementwise";
    const fused = epilogues.get(n.id);
    const row = rows.get(n.id);
    // A row kernel reads what the reduction (with its epilogue chain) and `n` read, not the statistic.
    const rowReads = (r: RowFusion) =>
      readsOf([...(r.result === r.reduce ? r.reduce.src : r.result.src), ...n.src]).filter((x) =>
        x !== r.result
      );
    const task: Task = row ? { node: n, kind: "row", copy: false, row, reads: rowReads(row) } : fused
      ? {
        node: n,
        kind: LOWERING[fused.op].kernel!,
        copy: false,
        fused,
        reads: readsOf([...fused.src, ...n.src]).filter((r) => r !== fused),
      }
      : { node: n, kind, copy: false, reads: readsOf(n.src) };
    const parts = splits.get(n.id);
    if (parts) task.parts = parts;
    tasks.push(task);
    producer.set(n.id, task);
    if (row?.keep) producer.set(row.result.id, task);
    for (const p of parts ?? []) producer.set(p.id, task);
  }
  const copy = (node: Node, at?: Location): Task => {
    const task: Task = { node, kind: "elementwise", copy: true, reads: readsOf([node]) };
    if (at) task.at = at;
    tasks.push(task);
    return task;
  };

  // State written in place: its writers store into the slot, or the one kernel that computes the
  // whole new value does (a copy task made below), and the output reads as the slot.
  const inPlaceState = new Map<string, { input: Node<"input">; copyTo?: Location }>();
  for (const { name, input } of (opts.inPlace ?? opts.fuse ?? true) ? graph.state ?? [] : []) {
    const out = graph.outputs.find((o) => o.name === name)?.node;
    const slot = location.get(input.id);
    if (!out || !slot || out === input) continue;
    const writers = stateWritersInPlace(out, input, producer, tasks, stored);
    if (writers) {
      for (const w of writers) {
        w.task.at = { buffer: slot.buffer, offset: slot.offset + w.offset };
        if (w.keepsOld) w.task.writesWhere = true;
      }
      inPlaceState.set(name, { input: input as Node<"input"> });
    } else if (
      !producer.has(out.id) && !tasks.some((t) => t.reads.some((r) => r.id === input.id)) &&
      readsOnlyAt(out, input, 0, stored)
    ) {
      inPlaceState.set(name, { input: input as Node<"input">, copyTo: slot });
    }
  }
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
    const inSlot = inPlaceState.get(name);
    if (inSlot) {
      if (inSlot.copyTo) copy(node, inSlot.copyTo);
      outputTask.set(name, inSlot.input);
    } else if (node.op === "input") outputTask.set(name, node as Node<"input">);
    else if (p && p.at === undefined) outputTask.set(name, p);
    else outputTask.set(name, copy(node));
  }

  // Run order: a memory-aware topological order of the kernels (see passes/schedule.ts).
  {
    const index = new Map(tasks.map((t, i) => [t, i]));
    const producerIndex = new Map<number, number>();
    tasks.forEach((t, i) => {
      if (!t.copy) producerIndex.set(t.node.id, i);
      if (t.row?.keep) producerIndex.set(t.row.result.id, i);
      for (const p of t.parts ?? []) producerIndex.set(p.id, i);
    });
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
  // In place: an elementwise kernel writes over a kernel result that dies with it, when it reads
  // that result only at the element it writes (elementwise ops and reshapes all the way down).
  const inPlace = opts.inPlace ?? opts.fuse ?? true;
  const producedAt = new Map<number, number>();
  tasks.forEach((t, k) => !t.copy && t.at === undefined && producedAt.set(t.node.id, k));
  const inPlaceHost = (t: Task, k: number): number | undefined => {
    if (t.kind !== "elementwise" || t.copy || t.fused) return undefined;
    const host = t.reads.find((r) => {
      const j = producedAt.get(r.id);
      return j !== undefined && j < k && lastRead.get(r.id) === k && !pinned.has(tasks[j]!) &&
        size(r.shape) === size(t.node.shape) && onlyFlatPaths(t.node, r, stored);
    });
    return host && TASK_ID + producedAt.get(host.id)!;
  };
  const lifetimes = [
    ...graph.inputs.map((n) => ({
      id: n.id,
      words: size(n.shape),
      start: -1,
      // An input that is also an output must survive to the read-back.
      end: graph.outputs.some((o) => o.node === n) ? Infinity : lastRead.get(n.id) ?? -1,
    })),
    // The slices of a split kernel, each with its own lifetime (ids: the slice nodes' ids).
    ...tasks.flatMap((t, k) =>
      (t.parts ?? []).map((p) => ({ id: p.id, words: size(p.shape), start: k, end: lastRead.get(p.id) ?? k }))
    ),
    ...tasks.flatMap((t, k) => {
      if (t.at !== undefined || t.parts) return [];
      const alias = inPlace ? inPlaceHost(t, k) : undefined;
      return [{
        id: TASK_ID + k,
        words: size(t.node.shape),
        start: k,
        end: pinned.has(t) ? Infinity : t.copy ? k : lastRead.get(t.node.id) ?? k,
        ...(alias === undefined ? {} : { alias }),
      }];
    }),
    // Row statistics a row kernel stores beside its output.
    ...tasks.flatMap((t, k) =>
      t.row?.keep
        ? [{
          id: STAT_ID + k,
          words: size(t.row.result.shape),
          start: k,
          end: lastRead.get(t.row.result.id) ?? k,
        }]
        : []
    ),
  ];
  // f16 storage: the float kernel results (split slices included) that are not entry outputs go to
  // the half arenas, planned by the same planner in words of two elements. Entry inputs and outputs
  // stay f32 words in `act` (the host reads and writes them); so do integer and bool tensors, row
  // statistics (one per row, they rescale whole rows in the backward pass) and tiny tensors.
  const halfIds = new Set<number>();
  if (opts.storage === "f16") {
    const half = (n: Node) => (n.dtype === "f32" || n.dtype === "f16") && size(n.shape) >= HALF_MIN_ELEMENTS;
    tasks.forEach((t, k) => {
      for (const p of t.parts ?? []) if (half(p)) halfIds.add(p.id);
      if (t.at === undefined && !t.parts && !pinned.has(t) && half(t.node)) halfIds.add(TASK_ID + k);
    });
  }
  // An in-place alias holds only between tensors of one kind of arena.
  const sameKind = (l: Lifetime): Lifetime => {
    if (l.alias === undefined || halfIds.has(l.alias) === halfIds.has(l.id)) return l;
    const { alias: _, ...rest } = l;
    return rest;
  };
  const words = lifetimes.filter((l) => !halfIds.has(l.id)).map(sameKind);
  const halves = lifetimes.filter((l) => halfIds.has(l.id)).map((l) => ({
    ...sameKind(l),
    words: Math.ceil(l.words / 2),
  }));
  const memory = planMemory(words, opts.reservedWords ?? 0, opts.arenaWords ?? Infinity);
  const halfMemory = planMemory(halves, 0, opts.arenaWords ?? Infinity);
  const arenaLocation = (id: number): Location => {
    const half = halfMemory.offsets.get(id);
    if (half) return { buffer: halfArenaName(half.arena), offset: 2 * half.offset };
    const at = memory.offsets.get(id)!;
    return { buffer: arenaName(at.arena), offset: at.offset };
  };
  const target = (k: number): Location => {
    const t = tasks[k]!;
    return t.at ?? arenaLocation(t.parts ? t.parts[0]!.id : TASK_ID + k);
  };
  for (const n of graph.inputs) location.set(n.id, arenaLocation(n.id));
  tasks.forEach((t, k) => {
    if (!t.copy && !t.parts) location.set(t.node.id, target(k));
    for (const p of t.parts ?? []) location.set(p.id, arenaLocation(p.id));
    if (t.row?.keep) location.set(t.row.result.id, arenaLocation(STAT_ID + k));
  });

  const kernels = tasks.map((task, k) => {
    const kernel = emitKernel(
      task,
      target(k),
      `${opts.prefix}${k}_${task.copy ? "copy" : task.node.op}`,
      location,
      opts,
    );
    const { wgsl, offsets } = bindArenaOffsets(kernel.wgsl, kernel.bindings.length);
    return offsets.length ? { ...kernel, wgsl, offsets } : kernel;
  });
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
    halfWords: halves.length ? halfMemory.arenaWords : [],
  };
}

/**
 * The graph with `rule` applied to its roots, verified after the rewrite: pointwise convs as matmuls
 * (passes/pointwise_conv.ts), and as fusion wants it, contractions merged (passes/contractions.ts)
 * and pieces joined (passes/pieces.ts).
 */
function rewriteGraph(graph: EntryGraph, rule: (roots: readonly Node[]) => Node[]): EntryGraph {
  const roots = [...graph.outputs.map((o) => o.node), ...graph.placed.map((p) => p.node)];
  const joined = rule(roots);
  if (joined.every((r, i) => r === roots[i])) return graph;
  verify(joined);
  const k = graph.outputs.length;
  return {
    ...graph,
    outputs: graph.outputs.map((o, i) => ({ name: o.name, node: joined[i]! })),
    placed: graph.placed.map((p, i) => ({ node: joined[k + i]!, at: p.at })),
  };
}
