/**
 * The cached Transfusion entries (prefill, decode, denoise_span over the `kv` state) against their
 * oracle, the uncached "logits" and "denoise" entries: on the GPU for a small random model, rows of
 * every kind batched with different windows, and through the reference interpreter for one step.
 */
import assert from "node:assert/strict";
import { compile, interpret, type Plan } from "../compiler/mod.ts";
import {
  all,
  type AnyModel,
  buildLayout,
  causal,
  full,
  input,
  LAYOUT_FIELDS,
  layoutInputName,
  layoutInputs,
  layoutOf,
  maskDense,
  maskWindow,
  model,
  prefix,
  sameDocument,
  sameSpan,
  type Segment,
  type Tensor,
  trace,
  window,
} from "../spec/mod.ts";
import { transfusion, type TransfusionConfig } from "../spec/transfusion/mod.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { Executor } from "../runtime/mod.ts";

Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.set("XDG_RUNTIME_DIR", "/tmp/xdg");

const SEQ = 32;
const small = transfusion({
  name: "cache_probe",
  // A larger init than training's 0.02, so attention is far from uniform and a wrong key shows.
  backbone: { dim: 32, depth: 2, heads: 2, hidden: 64, initStd: 0.3 },
  text: { vocab: 261, captionLength: 6 },
  image: { size: 8, channels: 1, patch: 2, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0 },
  seq: SEQ,
  batch: 3,
}) as AnyModel;
const config = trace(small).config as TransfusionConfig;
const GRID = config.image.size / config.image.patch;
const P = GRID * GRID;
const PIXELS = config.image.channels * config.image.size * config.image.size;
const DEPTH = config.backbone.depth;
const DIM = config.backbone.dim;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One row: its tokens, layout fields (length SEQ each), where its image's patches start, its image. */
interface Row {
  readonly tokens: number[];
  readonly fields: Readonly<Record<string, Int32Array>>;
  /** The first patch position, or -1 without an image. */
  readonly patchStart: number;
  /** The position after the row's last segment. */
  readonly end: number;
  readonly image: number[];
}

const text = (length: number): Segment => ({ kind: "text", length, doc: 0 });
const image: Segment = { kind: "image", rows: GRID, cols: GRID, doc: 0 };
const KINDS = {
  captionFirst: [text(1 + 6), image, text(4)],
  imageFirst: [text(1), image, text(6 + 2)],
  textOnly: [text(20)],
};

function makeRow(segments: readonly Segment[], seed: number): Row {
  const random = rng(seed);
  const layout = buildLayout([segments], SEQ);
  const tokens = new Array<number>(SEQ).fill(SPECIAL.pad);
  let patchStart = -1;
  let end = 0;
  for (const placed of layout.placed) {
    end = placed.end;
    if (placed.segment.kind === "text") {
      for (let t = placed.start; t < placed.end; t++) {
        tokens[t] = t === 0 ? SPECIAL.bos : Math.floor(random() * 256);
      }
      continue;
    }
    patchStart = placed.patchStart;
    tokens[placed.start] = SPECIAL.boi;
    tokens[placed.end - 1] = SPECIAL.eoi;
    for (let p = 0; p < P; p++) tokens[patchStart + p] = 0;
  }
  const fields = Object.fromEntries(LAYOUT_FIELDS.map((f) => [f, layout.fields[f]]));
  const img = Array.from({ length: PIXELS }, () => 2 * random() - 1);
  return { tokens, fields, patchStart, end, image: img };
}

type Feed = Record<string, number[]>;

/**
 * The layout inputs of a batch as far as each row is known: positions >= known[b] are padding
 * (doc = modality = span = -1, pos = row = col = 0), as the generation loop fills them.
 */
function layoutFeed(rows: readonly Row[], known: readonly number[] = rows.map(() => SEQ)): Feed {
  const feed: Feed = {};
  for (const f of LAYOUT_FIELDS) {
    const pad = f === "doc" || f === "modality" || f === "span" ? -1 : 0;
    feed[layoutInputName(f)] = rows.flatMap((r, b) =>
      Array.from(r.fields[f]!, (v, t) => (t < known[b]! ? v : pad))
    );
  }
  return feed;
}

/** The "logits" entry's inputs for whole rows (or prefixes: their images only if inside `known`). */
function logitsFeed(rows: readonly Row[], known: readonly number[] = rows.map(() => SEQ)): Feed {
  const has = rows.map((r, b) => r.patchStart >= 0 && r.patchStart + P <= known[b]!);
  return {
    tokens: rows.flatMap((r, b) => r.tokens.map((v, t) => (t < known[b]! ? v : SPECIAL.pad))),
    ...layoutFeed(rows, known),
    images: rows.flatMap((r, b) => has[b] ? r.image : new Array<number>(PIXELS).fill(0)),
    patch_pos: rows.flatMap((r, b) => Array.from({ length: P }, (_, p) => has[b] ? r.patchStart + p : -1)),
    image_valid: has.map((h) => (h ? 1 : 0)),
  };
}

/** Relative error: the largest difference over the largest magnitude of the reference. */
function closeTo(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: lengths`);
  let [diff, scale] = [0, 0];
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  assert.ok(scale > 0, `${what}: the reference is all zeros`);
  assert.ok(diff <= tol * scale, `${what}: max |diff| ${diff} > ${tol} * ${scale}`);
}

const V = config.text.vocab;
/** Row b's logits at position t out of [B, SEQ, V]. */
const logitsAt = (all: ArrayLike<number>, b: number, t: number) =>
  Array.from({ length: V }, (_, v) => all[(b * SEQ + t) * V + v]!);
const TOL = 1e-4;

/** Row b's part of the state kv [depth, 2, B, S, D], one array per (layer, k|v). */
function rowCache(kv: ArrayLike<number>, b: number, B: number): number[] {
  const out: number[] = [];
  for (let lw = 0; lw < DEPTH * 2; lw++) {
    const from = (lw * B + b) * SEQ * DIM;
    for (let i = 0; i < SEQ * DIM; i++) out.push(kv[from + i]!);
  }
  return out;
}

/**
 * Generates each row from its prefix to its end through the cached entries, as the generation loop
 * would: prefill of every prefix at once, then per call either decode (one token, per row at its own
 * position) or, for rows whose next position starts an image, denoise_span with the clean image at
 * t = 0. Rows not in a call are inactive (start -1). Returns the decode logits per row and position.
 */
async function generateCached(ex: Executor, rows: readonly Row[], prefixes: readonly number[]) {
  const B = rows.length;
  await ex.resetState();
  const pre = await ex.run("prefill", { ...logitsFeed(rows, prefixes), start: rows.map(() => 0) });
  const got = rows.map(() => new Map<number, number[]>());
  rows.forEach((_, b) => {
    for (let t = 0; t < prefixes[b]!; t++) got[b]!.set(t, logitsAt(pre.logits!, b, t));
  });
  const cursor = [...prefixes];
  const live = (b: number) => cursor[b]! < rows[b]!.end;
  while (rows.some((_, b) => live(b))) {
    const spans = rows.map((r, b) => live(b) && cursor[b] === r.patchStart);
    if (spans.some(Boolean)) {
      const start = spans.map((s, b) => (s ? cursor[b]! : -1));
      await ex.run("denoise_span", {
        x_t: rows.flatMap((r, b) => spans[b] ? r.image : new Array<number>(PIXELS).fill(0)),
        t: rows.map(() => 0),
        start,
        ...layoutFeed(rows, start.map((s) => s + P)),
      });
      spans.forEach((s, b) => s && (cursor[b] = cursor[b]! + P));
      continue;
    }
    const start = rows.map((_, b) => (live(b) ? cursor[b]! : -1));
    const out = await ex.run("decode", {
      token: rows.map((r, b) => (start[b]! >= 0 ? r.tokens[start[b]!]! : 0)),
      start,
      ...layoutFeed(rows, start.map((s) => s + 1)),
    });
    start.forEach((s, b) => {
      if (s < 0) return;
      got[b]!.set(s, Array.from(out.logits!.subarray(b * V, (b + 1) * V)));
      cursor[b] = s + 1;
    });
  }
  assert.equal(B, got.length);
  return got;
}

Deno.test("cached Transfusion entries equal the uncached ones", async (t) => {
  const entries = ["logits", "denoise", "prefill", "decode", "denoise_span"];
  const plan: Plan = compile(small, { entries, adapterClass: "cpu", dims: { batch: 3 } });
  const ex = await Executor.create(plan, { seed: 5 });
  const rows = [makeRow(KINDS.captionFirst, 1), makeRow(KINDS.imageFirst, 2), makeRow(KINDS.textOnly, 3)];
  const full = (await ex.run("logits", logitsFeed(rows))).logits!;

  await t.step("the plan: one kv slot [depth, 2, B, S, D] shared by the three entries", () => {
    assert.deepEqual(plan.state?.map((s) => [s.name, s.shape]), [["kv", [DEPTH, 2, 3, SEQ, DIM]]]);
    for (const e of ["prefill", "decode", "denoise_span"]) assert.deepEqual(plan.entries[e]!.state, ["kv"]);
    // Each layer's merge writes its [B, S, D] straight into the slot: no concat of the layers, no copy.
    // prefill's attention reads its own keys, so its merges are computed inline by the one kernel
    // that writes the whole new cache, which then writes it into the slot.
    for (const e of ["prefill", "decode", "denoise_span"]) {
      const steps = plan.entries[e]!.steps;
      assert.ok(steps.every((s) => s.kind === "dispatch"), `${e}: the KV cache is written in place`);
      const writers = steps.filter((s) =>
        s.kind === "dispatch" &&
        plan.kernels[s.kernel]!.bindings.some((b) => b.buffer === "state" && b.access === "read_write")
      );
      assert.equal(writers.length, e === "prefill" ? 1 : 2 * DEPTH, `${e}: kernels writing the cache`);
      // A window's merge keeps the other positions where they are: it writes only where it picks.
      if (e !== "prefill") {
        for (const s of writers) {
          assert.match(plan.kernels[s.kind === "dispatch" ? s.kernel : 0]!.wgsl, /if \(picked_at\(flat\)\)/);
        }
      }
    }
    const names = (e: string) => plan.entries[e]!.inputs.map((s) => s.name).sort();
    assert.deepEqual(names("prefill"), [...names("logits"), "start"].sort());
    assert.deepEqual(plan.entries.decode!.outputs.map((s) => [s.name, s.shape]), [["logits", [3, V]]]);
    assert.deepEqual(plan.entries.denoise_span!.outputs.map((s) => [s.name, s.shape]), [
      ["pred", [3, 1, 8, 8]],
    ]);
  });

  await t.step("prefill logits == logits entry logits", async () => {
    await ex.resetState();
    const pre = await ex.run("prefill", { ...logitsFeed(rows), start: [0, 0, 0] });
    closeTo(pre.logits!, full, TOL, "prefill");
  });

  await t.step(
    "prefill of a prefix, then decode and denoise_span (t = 0) == logits of the full row",
    async () => {
      // Different prefixes per row, so one call carries different starts and some rows sit out.
      const prefixes = [4, rows[1]!.patchStart + P + 2, 3];
      const got = await generateCached(ex, rows, prefixes);
      rows.forEach((r, b) => {
        for (let t = 0; t < r.end; t++) {
          // Patch positions are never decoded: the next text token comes after EOI.
          if (r.patchStart >= 0 && t >= r.patchStart && t < r.patchStart + P && t >= prefixes[b]!) {
            assert.ok(!got[b]!.has(t));
            continue;
          }
          closeTo(got[b]!.get(t)!, logitsAt(full, b, t), TOL, `row ${b} position ${t}`);
        }
      });
    },
  );

  await t.step("denoise_span pred == denoise entry pred, and inactive rows keep their cache", async () => {
    const random = rng(9);
    const xt = rows.map(() => Array.from({ length: PIXELS }, () => 2 * random() - 1));
    const steps = [250, 700, 0];
    const { images: _clean, ...feed } = logitsFeed(rows);
    const uncached = await ex.run("denoise", { ...feed, x_t: xt.flat(), t: steps });
    // The prefix up to BOI is cached; the text-only row (start -1) must keep its cache.
    const known = rows.map((r) => (r.patchStart >= 0 ? r.patchStart : r.end));
    await ex.resetState();
    await ex.run("prefill", { ...logitsFeed(rows, known), start: [0, 0, 0] });
    const before = await ex.getState("kv");
    const start = [rows[0]!.patchStart, rows[1]!.patchStart, -1];
    const span = await ex.run("denoise_span", {
      x_t: xt.flat(),
      t: steps,
      start,
      ...layoutFeed(rows, start.map((s, b) => (s >= 0 ? s + P : known[b]!))),
    });
    for (const b of [0, 1]) {
      const want = Array.from(uncached.pred!.subarray(b * PIXELS, (b + 1) * PIXELS));
      closeTo(span.pred!.subarray(b * PIXELS, (b + 1) * PIXELS), want, TOL, `row ${b} pred`);
    }
    const after = await ex.getState("kv");
    assert.deepEqual(rowCache(after, 2, 3), rowCache(before, 2, 3), "an inactive row's cache is untouched");
    for (const b of [0, 1]) {
      assert.notDeepEqual(rowCache(after, b, 3), rowCache(before, b, 3), `row ${b} wrote its patches`);
    }
  });
  ex.destroy();
});

/** The same size with the other codec, positions and conditioning: skips and a learned table. */
const unetLearned = transfusion({
  name: "cache_probe_unet",
  backbone: { dim: 32, depth: 2, heads: 2, hidden: 64, initStd: 0.3, norm: "layernorm", mlp: "gelu" },
  text: { vocab: 261, captionLength: 6 },
  image: {
    size: 8,
    channels: 1,
    patch: 2,
    imagesPerRow: 1,
    encoder: "unet",
    unetWidths: [8, 16],
    positions: "learned",
    timestep: "adanorm",
  },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0 },
  seq: SEQ,
  batch: 1,
}) as AnyModel;

Deno.test("through the interpreter: prefill + denoise_span == denoise, prefill + decode == logits", async (t) => {
  for (const m of [small, unetLearned]) {
    await t.step(m.name, () => {
      const dims = { batch: 1 };
      const random = rng(4);
      // Random parameters of a visible size (zero-initialized ones, like adanorm's, too).
      const params = Object.fromEntries(
        compile(m, { dims, entries: [] }).params.map((p) => [
          p.path,
          p.init.kind === "values"
            ? Float64Array.from(p.init.data)
            : Float64Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => (random() - 0.5) * 0.6),
        ]),
      );
      const row = makeRow(KINDS.imageFirst, 7);
      const run = (entry: string, inputs: Record<string, ArrayLike<number>>) => {
        const traced = trace(m, { dims, entry });
        const names = [...Object.keys(traced.outputs), ...traced.state.map((s) => s.name)];
        const nodes = [...Object.values(traced.outputs), ...traced.state.map((s) => s.output)];
        const values = interpret(nodes, { params, inputs });
        return Object.fromEntries(names.map((n, i) => [n, values[i]!.data]));
      };
      const empty = new Float64Array(DEPTH * 2 * SEQ * DIM);

      // BOS BOI cached, then the image's patches at t = 300.
      const xt = Array.from({ length: PIXELS }, () => 2 * random() - 1);
      const { images: _clean, ...feed } = logitsFeed([row]);
      const denoise = run("denoise", { ...feed, x_t: xt, t: [300] }).pred!;
      const boi = run("prefill", { ...logitsFeed([row], [row.patchStart]), start: [0], kv: empty });
      const span = run("denoise_span", {
        x_t: xt,
        t: [300],
        start: [row.patchStart],
        ...layoutFeed([row], [row.patchStart + P]),
        kv: boi.kv!,
      });
      closeTo(span.pred!, denoise, 1e-9, "denoise_span");

      // BOS BOI patches EOI cached (clean image), then the first caption token is decoded.
      const full = run("logits", logitsFeed([row])).logits!;
      const k = row.patchStart + P + 1;
      const pre = run("prefill", { ...logitsFeed([row], [k]), start: [0], kv: empty });
      closeTo(Array.from(pre.logits!).slice(0, k * V), Array.from(full).slice(0, k * V), 1e-9, "prefill");
      const dec = run("decode", {
        token: [row.tokens[k]!],
        start: [k],
        ...layoutFeed([row], [k + 1]),
        kv: pre.kv!,
      });
      closeTo(dec.logits!, logitsAt(full, 0, k), 1e-9, "decode");
    });
  }
});

Deno.test("maskWindow is maskDense's rows start..start+L-1, for every kind of rule", () => {
  const rules = {
    transfusion: sameDocument().and(causal().or(sameSpan("image"))),
    window: window(3).or(prefix(2)),
    negated: causal().not().and(all()),
  };
  const rows = [makeRow(KINDS.captionFirst, 1), makeRow(KINDS.imageFirst, 2)];
  const L = 5;
  const probe = model({
    name: "mask_probe",
    dims: { batch: 2, seq: SEQ },
    config: {},
    params: () => ({}),
    inputs: () => ({}),
    loss: () => full([], 0, "f32"),
    entries: {
      masks: {
        inputs: () => ({ ...layoutInputs(), start: input("i32", [2]) }),
        outputs: (_p, x) => {
          const layout = layoutOf(x as never);
          const out: Record<string, Tensor> = {};
          for (const [name, rule] of Object.entries(rules)) {
            out[`${name}_window`] = maskWindow(rule, layout, x.start as Tensor<"i32", 1>, L).cast("i32");
            out[`${name}_dense`] = maskDense(rule, layout).cast("i32");
          }
          return out;
        },
      },
    },
  }) as AnyModel;
  const traced = trace(probe, { entry: "masks" });
  const names = Object.keys(traced.outputs);
  const start = [3, 10];
  const values = interpret(Object.values(traced.outputs), { inputs: { ...layoutFeed(rows), start } });
  const got = Object.fromEntries(names.map((n, i) => [n, values[i]!.data]));
  for (const name of Object.keys(rules)) {
    const [win, dense] = [got[`${name}_window`]!, got[`${name}_dense`]!];
    let seen = 0;
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < SEQ; j++) {
          const w = win[(b * L + i) * SEQ + j]!;
          assert.equal(w, dense[(b * SEQ + start[b]! + i) * SEQ + j], `${name} row ${b} query ${i} key ${j}`);
          seen += w;
        }
      }
    }
    assert.ok(seen > 0 && seen < 2 * L * SEQ, `${name}: a mask with both values`);
  }
});
