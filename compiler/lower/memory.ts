/**
 * The memory plan for one entry point: every tensor that lives in an activation arena gets an arena
 * and a word offset, reusing space once its last reader has run. Lifetimes are kernel indices: a
 * tensor is written by kernel `start` (-1: uploaded before the step) and read up to kernel `end`
 * (Infinity: read back after the step). First-fit over a coalescing free list; offsets are 4-word
 * aligned so vector loads stay possible.
 *
 * One arena is one storage binding, and adapters cap a binding's size (128 MiB by default in
 * WebGPU), so a plan whose live set exceeds `arenaWords` spills into further arenas (`act1`,
 * `act2`, ...); a tensor never straddles two.
 */
export interface Lifetime {
  readonly id: number;
  readonly words: number;
  readonly start: number;
  readonly end: number;
  /**
   * In place: take over the space of this earlier lifetime, which must end where this one starts
   * (its last reader is this tensor's writer) and be as large. The writer reads each element of it
   * only where it writes the same element, so overwriting is safe.
   */
  readonly alias?: number;
}

export interface MemoryPlan {
  readonly offsets: ReadonlyMap<number, { arena: number; offset: number }>;
  /** Words used at the peak, per arena. */
  readonly arenaWords: readonly number[];
}

const ALIGN = 4;
const align = (w: number) => Math.ceil(w / ALIGN) * ALIGN;

/** The WGSL buffer name of arena `i`. */
export const arenaName = (i: number) => (i === 0 ? "act" : `act${i}`);

/** The WGSL buffer name of half (f16 storage) arena `i`; planned in words of two f16 elements. */
export const halfArenaName = (i: number) => (i === 0 ? "half" : `half${i}`);

class Arena {
  free: { offset: number; words: number }[] = [];
  live: { end: number; offset: number; words: number }[] = [];
  top: number;
  peak: number;
  constructor(reserved: number, readonly limit: number) {
    this.top = align(reserved);
    this.peak = this.top;
  }

  release(before: number) {
    for (let i = this.live.length - 1; i >= 0; i--) {
      const l = this.live[i]!;
      if (l.end < before) {
        this.free.push({ offset: l.offset, words: l.words });
        this.live.splice(i, 1);
      }
    }
    this.free.sort((a, b) => a.offset - b.offset);
    const merged: { offset: number; words: number }[] = [];
    for (const b of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.offset + last.words === b.offset) last.words += b.words;
      else merged.push({ ...b });
    }
    // A free block at the top gives its space back to the bump pointer.
    const tail = merged[merged.length - 1];
    if (tail && tail.offset + tail.words === this.top) {
      this.top = tail.offset;
      merged.pop();
    }
    this.free = merged;
  }

  /** Hands the live block at `offset` (ending at `start`) over to a tensor that lives until `end`. */
  inherit(offset: number, start: number, words: number, end: number): boolean {
    const block = this.live.find((l) => l.offset === offset && l.end === start && l.words === words);
    if (block) block.end = end;
    return block !== undefined;
  }

  /** First fit, or the top when it stays under the limit; undefined when the arena is full. */
  take(words: number, end: number): number | undefined {
    const slot = this.free.findIndex((b) => b.words >= words);
    let offset: number;
    if (slot >= 0) {
      const b = this.free[slot]!;
      offset = b.offset;
      if (b.words === words) this.free.splice(slot, 1);
      else this.free[slot] = { offset: b.offset + words, words: b.words - words };
    } else {
      if (this.top + words > this.limit) return undefined;
      offset = this.top;
      this.top += words;
      this.peak = Math.max(this.peak, this.top);
    }
    this.live.push({ end, offset, words });
    return offset;
  }
}

export function planMemory(lifetimes: readonly Lifetime[], reserved = 0, arenaWords = Infinity): MemoryPlan {
  const offsets = new Map<number, { arena: number; offset: number }>();
  const arenas = [new Arena(reserved, arenaWords)];
  const byStart = [...lifetimes].sort((a, b) => a.start - b.start || b.words - a.words);
  for (const l of byStart) {
    const words = align(Math.max(l.words, 1));
    if (words > arenaWords) {
      throw new Error(`a tensor of ${4 * words} bytes exceeds the ${4 * arenaWords}-byte binding limit`);
    }
    for (const a of arenas) a.release(l.start);
    const host = l.alias === undefined ? undefined : offsets.get(l.alias);
    if (host && arenas[host.arena]!.inherit(host.offset, l.start, words, l.end)) {
      offsets.set(l.id, host);
      continue;
    }
    let placed = false;
    for (const [i, a] of arenas.entries()) {
      const offset = a.take(words, l.end);
      if (offset !== undefined) {
        offsets.set(l.id, { arena: i, offset });
        placed = true;
        break;
      }
    }
    if (!placed) {
      const a = new Arena(0, arenaWords);
      arenas.push(a);
      offsets.set(l.id, { arena: arenas.length - 1, offset: a.take(words, l.end)! });
    }
  }
  return { offsets, arenaWords: arenas.map((a) => a.peak) };
}
