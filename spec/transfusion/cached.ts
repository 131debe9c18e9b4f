/**
 * The cached entries (docs/kv_contract.md, section 2): the Transfusion model a window of positions
 * at a time, over a KV cache kept in the entry state `kv`. They compute what the uncached "logits"
 * and "denoise" entries compute (those are their oracle), reusing the same forward pieces.
 *
 *   prefill       logits inputs + start                    -> logits [B, T, vocab]   (window: the row)
 *   decode        token [B, 1], start, layout_*            -> logits [B, vocab]      (window: 1)
 *   denoise_span  x_t [B, C, H, W], t [B], start, layout_* -> pred [B, C, H, W]      (window: P patches)
 *
 * kv f32 [depth, 2, B, S, D]: per layer the keys (after RoPE, index 0) and values (1) of every
 * position of every row, D = heads * Dh in the projections' own order, so a layer's [B, S, D] splits
 * into heads exactly like the keys it came from. Keys are stored rotated: RoPE depends only on a
 * position's own layout fields, so a cached key never needs rotating again.
 *
 * The window's queries attend to the whole updated cache through the dense-mask path of
 * `attention`: the Transfusion rule evaluated from the layout with query position start + i
 * (`maskWindow`), [B, L, S] with L = 1 or P, so the [B, H, L, S] scores stay small. Positions not
 * filled yet carry doc = -1 in the layout, so the rule hides whatever their cache rows hold.
 * prefill's window is the whole row, so its start must be 0 (or < 0: inactive): it attends over its
 * own keys with the same flash-attention kernels as "logits" and only writes them to the cache.
 */
import { concat, iota, where } from "../functions.ts";
import { type Layout, layoutInputs, layoutOf } from "../layout.ts";
import { layoutAt, maskWindow, windowPositions } from "../mask.ts";
import { type EntryDef, input, type InputTree } from "../model.ts";
import type { Tensor } from "../tensor.ts";
import { rotary, transfusionMask } from "./backbone.ts";
import type { TransfusionConfig } from "./config.ts";
import type { Batch, EncodedImages, KvHook, ParamDecls, Params } from "./model.ts";

type T2 = Tensor<"f32", 2>;
type T3 = Tensor<"f32", 3>;
type T4 = Tensor<"f32", 4>;
type T5 = Tensor<"f32", 5>;
type I1 = Tensor<"i32", 1>;

/** The pieces of model.ts the cached entries reuse (passed in, so this file does not import it). */
export interface ModelParts {
  readonly forward: (p: Params, c: TransfusionConfig, x: Batch, kv?: KvHook) => { logits: () => T3 };
  /** The "logits" entry's inputs as a batch (clean images, t = 0). */
  readonly cleanBatch: (x: Record<string, Tensor>) => Batch;
  readonly encodeImages: (p: Params, c: TransfusionConfig, images: T5, t: T2) => EncodedImages;
  readonly decodeImages: (p: Params, c: TransfusionConfig, h: T3, e: EncodedImages) => T5;
  readonly entryInputs: (c: TransfusionConfig) => { readonly logits: InputTree };
  readonly geometry: (c: TransfusionConfig) => { readonly C: number; readonly size: number };
}

type Entry = EntryDef<TransfusionConfig, ParamDecls>;

/** The state every cached entry declares. */
export function kvState(c: TransfusionConfig): InputTree {
  return { kv: input("f32", [c.backbone.depth, 2, "batch", "seq", c.backbone.dim]) };
}

export function cachedEntries(m: ModelParts): { prefill: Entry; decode: Entry; denoise_span: Entry } {
  const start = { start: input("i32", ["batch"]) };
  return {
    prefill: {
      inputs: (c) => ({ ...m.entryInputs(c).logits, ...start }),
      state: kvState,
      outputs: (p, x, c) => {
        const cache = new KvCache(x.kv as T5, x.start as I1);
        const logits = m.forward(p, c, m.cleanBatch(x), (layer, k, v) => {
          cache.write(layer, k, v);
          return [k, v];
        }).logits();
        return { logits, kv: cache.next() };
      },
    },
    decode: {
      inputs: () => ({ token: input("i32", ["batch", 1]), ...start, ...layoutInputs() }),
      state: kvState,
      outputs: (p, x, c) => {
        const token = x.token as Tensor<"i32", 2>;
        const { h, kv } = windowForward(p, c, x, p.embed(token)); // [B, 1, D]
        return { logits: p.head(h).reshape([token.dim(0), c.text.vocab]), kv };
      },
    },
    denoise_span: {
      inputs: (c) => {
        const g = m.geometry(c);
        return {
          x_t: input("f32", ["batch", g.C, g.size, g.size]),
          t: input("f32", ["batch"]),
          ...start,
          ...layoutInputs(),
        };
      },
      state: kvState,
      outputs: (p, x, c) => {
        const xt = x.x_t as T4;
        const [b, ch, hh, ww] = xt.shape as [number, number, number, number];
        // One image: the "denoise" entry's pieces with N = 1; the window is its P patches in order.
        const e = m.encodeImages(
          p,
          c,
          xt.reshape([b, 1, ch, hh, ww]),
          (x.t as Tensor<"f32", 1>).reshape([b, 1]),
        );
        const { h, kv } = windowForward(p, c, x, e.patches); // [B, P, D]
        return { pred: m.decodeImages(p, c, h, e).reshape([b, ch, hh, ww]), kv };
      },
    },
  };
}

/** The backbone over a window of inputs [B, L, D] at start..start+L-1, attending to the cache. */
function windowForward(p: Params, c: TransfusionConfig, x: Record<string, Tensor>, input: T3) {
  const layout: Layout = layoutOf(x as never);
  const start = x.start as I1;
  const length = input.dim(1);
  const cache = new KvCache(x.kv as T5, start);
  const attend = {
    mask: maskWindow(transfusionMask(), layout, start, length), // [B, L, S]
    rope: rotary(layoutAt(layout, windowPositions(start, length)), c.backbone, c.image),
  };
  const h = p.backbone(input, (layer) => ({
    ...attend,
    kv: (k: T4, v: T4) => cache.write(layer, k, v).map((t) => heads(t, k.dim(1))) as [T4, T4],
  }));
  return { h, kv: cache.next() };
}

/** A layer's cache [B, S, D] as attention heads [B, H, S, Dh]. */
function heads(t: T3, h: number): T4 {
  const [b, s, d] = t.shape as [number, number, number];
  return t.reshape([b, s, h, d / h]).permute([0, 2, 1, 3]);
}

/** The old cache (the state read), the window's writes per layer, and the new state. */
class KvCache {
  readonly #written: T3[][] = [];

  constructor(readonly kv: T5, readonly start: I1) {}

  /** Writes the window's keys and values [B, H, L, Dh] into layer `layer`: the new [B, S, D] pair. */
  write(layer: number, k: T4, v: T4): [T3, T3] {
    const pair: [T3, T3] = [this.#update(this.#old(layer, 0), k), this.#update(this.#old(layer, 1), v)];
    this.#written[layer] = pair;
    return pair;
  }

  /** The new state [depth, 2, B, S, D]: every layer's pair (the entry writes them all). */
  next(): T5 {
    const depth = this.kv.dim(0);
    const [b, s, d] = [this.kv.dim(2), this.kv.dim(3), this.kv.dim(4)];
    const layers = Array.from({ length: depth }, (_, l) => {
      const pair = this.#written[l];
      if (!pair) throw new Error(`internal: layer ${l} of ${depth} wrote nothing to the KV cache`);
      return concat(pair.map((t) => t.reshape([1, 1, b, s, d])), 1);
    });
    return concat(layers, 0) as T5;
  }

  #old(layer: number, which: 0 | 1): T3 {
    const [b, s, d] = [this.kv.dim(2), this.kv.dim(3), this.kv.dim(4)];
    return this.kv.slice(0, layer, layer + 1).slice(1, which, which + 1).reshape([b, s, d]);
  }

  /**
   * The cache with the window written in, without an update op: position s of row b takes the
   * window's row s - start[b] where 0 <= s - start[b] < L (gathered from the window flattened to
   * [B*L, D] at b*L + clamp(s - start[b])), and keeps its old value elsewhere. Rows with start < 0
   * write nothing. old [B, S, D], window [B, H, L, Dh].
   */
  #update(old: T3, window: T4): T3 {
    const [b, s, d] = old.shape as [number, number, number];
    const length = window.dim(2);
    const rows = window.permute([0, 2, 1, 3]).reshape([b * length, d]); // [B*L, D]
    const start = this.start.unsqueeze(1); // [B, 1]
    const offset = iota([b, s], 1, "i32").sub(start); // [B, S]
    const inWindow = offset.ge(0).and(offset.lt(length)).and(start.ge(0));
    const index = iota([b, s], 0, "i32").mul(length).add(offset.maximum(0).minimum(length - 1));
    return where(inWindow.unsqueeze(2), rows.gather(index), old) as T3; // [B, S, D]
  }
}
