/**
 * The memory plan for one entry point: every tensor that lives in the `act` arena gets a word
 * offset, reusing space once its last reader has run. Lifetimes are kernel indices: a tensor is
 * written by kernel `start` (-1: uploaded before the step) and read up to kernel `end` (Infinity:
 * read back after the step). First-fit over a coalescing free list; offsets are 4-word aligned so
 * vector loads stay possible.
 */
export interface Lifetime {
  readonly id: number;
  readonly words: number;
  readonly start: number;
  readonly end: number;
}

export interface MemoryPlan {
  readonly offsets: ReadonlyMap<number, number>;
  readonly peakWords: number;
}

const ALIGN = 4;
const align = (w: number) => Math.ceil(w / ALIGN) * ALIGN;

export function planMemory(lifetimes: readonly Lifetime[], reserved = 0): MemoryPlan {
  const offsets = new Map<number, number>();
  let free: { offset: number; words: number }[] = [];
  let top = align(reserved);
  let peak = top;
  const byStart = [...lifetimes].sort((a, b) => a.start - b.start || b.words - a.words);
  const live: { end: number; offset: number; words: number }[] = [];

  const release = (before: number) => {
    for (let i = live.length - 1; i >= 0; i--) {
      const l = live[i]!;
      if (l.end < before) {
        free.push({ offset: l.offset, words: l.words });
        live.splice(i, 1);
      }
    }
    free.sort((a, b) => a.offset - b.offset);
    const merged: typeof free = [];
    for (const b of free) {
      const last = merged[merged.length - 1];
      if (last && last.offset + last.words === b.offset) last.words += b.words;
      else merged.push({ ...b });
    }
    // A free block at the top gives its space back to the bump pointer.
    const tail = merged[merged.length - 1];
    if (tail && tail.offset + tail.words === top) {
      top = tail.offset;
      merged.pop();
    }
    free = merged;
  };

  for (const l of byStart) {
    release(l.start);
    const words = align(Math.max(l.words, 1));
    const slot = free.findIndex((b) => b.words >= words);
    let offset: number;
    if (slot >= 0) {
      const b = free[slot]!;
      offset = b.offset;
      if (b.words === words) free.splice(slot, 1);
      else free[slot] = { offset: b.offset + words, words: b.words - words };
    } else {
      offset = top;
      top += words;
      peak = Math.max(peak, top);
    }
    offsets.set(l.id, offset);
    live.push({ end: l.end, offset, words });
  }
  return { offsets, peakWords: peak };
}
