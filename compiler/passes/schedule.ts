/**
 * The order kernels run in. Any topological order is correct; the order decides how much memory is
 * live at once. A depth-first order from the gradients computes some backward tensors long before
 * their last reader (a layer's dK is needed early for dX and again at the end for dWk), so peak
 * memory grows with depth. This list scheduler runs, among the kernels whose inputs are ready, the
 * one that frees the most memory net of what it allocates (its inputs' last reader, a weight
 * gradient that consumes a big activation), ties going to the earlier kernel of the given order.
 */
export interface SchedTask {
  /** Tasks whose outputs this task reads (indices into the list). */
  readonly deps: readonly number[];
  /** Words this task's output occupies in the arena (0 when it goes elsewhere, e.g. gradients). */
  readonly words: number;
}

export function scheduleTasks(tasks: readonly SchedTask[]): number[] {
  const n = tasks.length;
  const readers = tasks.map(() => [] as number[]);
  tasks.forEach((t, i) => new Set(t.deps).forEach((d) => readers[d]!.push(i)));
  const pendingDeps = tasks.map((t) => new Set(t.deps).size);
  const unreadBy = readers.map((r) => r.length); // readers of each output not yet scheduled
  const ready = new Set<number>();
  tasks.forEach((_, i) => pendingDeps[i] === 0 && ready.add(i));
  const order: number[] = [];
  while (order.length < n) {
    let best = -1;
    let bestScore = -Infinity;
    for (const i of ready) {
      let freed = 0;
      for (const d of new Set(tasks[i]!.deps)) if (unreadBy[d] === 1) freed += tasks[d]!.words;
      const score = freed - tasks[i]!.words;
      if (score > bestScore || (score === bestScore && i < best)) [best, bestScore] = [i, score];
    }
    if (best < 0) throw new Error("internal: the task graph has a cycle");
    ready.delete(best);
    order.push(best);
    for (const d of new Set(tasks[best]!.deps)) unreadBy[d]!--;
    for (const r of readers[best]!) if (--pendingDeps[r]! === 0) ready.add(r);
  }
  return order;
}
