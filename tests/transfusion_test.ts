/**
 * The Transfusion model family: the example specs trace with the contract's inputs, options are
 * validated with messages a person can act on, the schedule follows its formula, the LM targets and
 * the mask do what the paper says, and at a tiny size one WebGPU train step matches the reference
 * interpreter in the loss and every gradient.
 */
import assert from "node:assert/strict";
import t1 from "../examples/t1.ts";
import demo from "../examples/transfusion_demo.ts";
import unet from "../examples/transfusion_unet.ts";
import textLm from "../examples/text_lm.ts";
import imageOnly from "../examples/image_only.ts";
import { compile, grad, interpret, type Node, SpecError } from "../compiler/mod.ts";
import { type AnyModel, buildLayout, layoutFeed, type Segment, trace } from "../spec/mod.ts";
import {
  diffusionSchedule,
  lmLoss,
  lmTargets,
  MAX_BETA,
  transfusion,
  type TransfusionConfig,
} from "../spec/transfusion/mod.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { Executor, initParams } from "../runtime/mod.ts";
import { input, iota, layoutInputs, layoutOf, model, positionWeights } from "../spec/mod.ts";

// ---------------------------------------------------------------------------------------------
// well-formed random batches, built here from the layout builder (independent of data/)

type Feed = Record<string, number[]>;

/** A deterministic generator (mulberry32), so failures reproduce. */
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

interface RowPlan {
  readonly imageFirst: boolean;
  /** Images per document (the slots left over are absent). */
  readonly images: number;
  /** Documents packed in the row, one after the other (default 1). */
  readonly docs?: number;
}

/**
 * Loss-entry inputs for rows laid out as the contract says: per document, caption-first BOS caption
 * (BOI patches EOI)*k, or image-first BOS (BOI patches EOI)*k caption; then padding. Tokens are
 * random bytes, images random in [-1, 1].
 */
function randomBatch(c: TransfusionConfig, rows: readonly RowPlan[], seed: number): Feed {
  const random = rng(seed);
  const { captionLength: L } = c.text;
  const [N, C, S, grid] = [
    c.image.imagesPerRow,
    c.image.channels,
    c.image.size,
    c.image.size / c.image.patch,
  ];
  const P = grid * grid;
  const layout = buildLayout(
    rows.map((r) =>
      Array.from({ length: r.docs ?? 1 }, (_, doc): Segment[] => {
        const imgs = Array.from(
          { length: r.images },
          (): Segment => ({ kind: "image", rows: grid, cols: grid, doc }),
        );
        const [bos, caption]: Segment[] = [{ kind: "text", length: 1, doc }, {
          kind: "text",
          length: L,
          doc,
        }];
        return r.imageFirst ? [bos!, ...imgs, caption!] : [bos!, caption!, ...imgs];
      }).flat()
    ),
    c.seq,
  );
  const B = rows.length;
  const tokens = new Array<number>(B * c.seq).fill(c.text.vocab === 261 ? SPECIAL.pad : SPECIAL.eos);
  const patchPos = new Array<number>(B * N * P).fill(-1);
  const images = new Array<number>(B * N * C * S * S).fill(0);
  const [valid, first] = [new Array<number>(B * N).fill(0), new Array<number>(B * N).fill(0)];
  for (const placed of layout.placed) {
    const { b, start, end } = placed;
    if (placed.segment.kind === "text") {
      const opensDoc = layout.fields.pos[b * c.seq + start] === 0;
      for (let t = start; t < end; t++) {
        tokens[b * c.seq + t] = t === start && opensDoc ? SPECIAL.bos : Math.floor(random() * 256);
      }
      continue;
    }
    const n = placed.span;
    tokens[b * c.seq + start] = SPECIAL.boi;
    tokens[b * c.seq + end - 1] = SPECIAL.eoi;
    for (let p = 0; p < P; p++) {
      tokens[b * c.seq + placed.patchStart + p] = 0;
      patchPos[(b * N + n) * P + p] = placed.patchStart + p;
    }
    for (let i = 0; i < C * S * S; i++) images[(b * N + n) * C * S * S + i] = 2 * random() - 1;
    valid[b * N + n] = 1;
    first[b * N + n] = rows[b]!.imageFirst ? 1 : 0;
  }
  const feed: Feed = { tokens, patch_pos: patchPos, images, image_valid: valid, image_first: first };
  for (const [k, v] of Object.entries(layoutFeed(layout.fields))) feed[k] = Array.from(v);
  return feed;
}

const configOf = (m: AnyModel, dims: Record<string, number> = {}) =>
  trace(m, { dims }).config as TransfusionConfig;

/** Deterministic initial parameters by path, as the executor would make them (seeded init). */
function initialParams(m: AnyModel, dims: Record<string, number>, seed = 1): Record<string, Float32Array> {
  const plan = compile(m, { dims, entries: [] });
  // Offsets are aligned (to vec4s), so the vector ends past the last parameter, not at the sum of sizes.
  const count = Math.max(...plan.params.map((p) => p.offset + p.shape.reduce((a, b) => a * b, 1)));
  const flat = initParams(plan.params, count, seed);
  return Object.fromEntries(
    plan.params.map((p) => [p.path, flat.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1))]),
  );
}

/** Runs one entry's outputs in the reference interpreter. */
function interpretEntry(
  m: AnyModel,
  entry: string,
  dims: Record<string, number>,
  params: Record<string, Float32Array>,
  inputs: Feed,
): Record<string, Float64Array> {
  const traced = trace(m, { dims, entry });
  const names = Object.keys(traced.outputs);
  const values = interpret(names.map((n) => traced.outputs[n]!), { params, inputs });
  return Object.fromEntries(names.map((n, i) => [n, values[i]!.data as Float64Array]));
}

const shapeOf = (n: Node) => `${n.dtype}[${n.shape.join(", ")}]`;
const inputShapes = (m: AnyModel, entry: string, dims: Record<string, number> = {}) =>
  Object.fromEntries(trace(m, { dims, entry }).inputs.map((n) => [n.arg.name, shapeOf(n)]));
const LAYOUT_NAMES = [
  "layout_doc",
  "layout_modality",
  "layout_span",
  "layout_pos",
  "layout_row",
  "layout_col",
];

/** What the contract says each entry takes, for a model with N images of C x S x S and P patches. */
function contractInputs(B: number, T: number, N: number, C: number, S: number, P: number) {
  const text = {
    tokens: `i32[${B}, ${T}]`,
    ...Object.fromEntries(LAYOUT_NAMES.map((n) => [n, `i32[${B}, ${T}]`])),
  };
  const image = `f32[${B}, ${N}, ${C}, ${S}, ${S}]`;
  const common = { ...text, patch_pos: `i32[${B}, ${N}, ${P}]`, image_valid: `f32[${B}, ${N}]` };
  return {
    loss: { ...common, images: image, image_first: `f32[${B}, ${N}]`, seed: "u32[2]" },
    denoise: { ...common, x_t: image, t: `f32[${B}, ${N}]` },
    logits: { ...common, images: image },
  };
}

// ---------------------------------------------------------------------------------------------

Deno.test("every example traces its entries with the contract's inputs and outputs", async (t) => {
  for (const m of [t1, demo, unet, imageOnly] as AnyModel[]) {
    await t.step(m.name, () => {
      const c = configOf(m);
      const grid = c.image.size / c.image.patch;
      const want = contractInputs(
        m.dims!.batch!,
        c.seq,
        c.image.imagesPerRow,
        c.image.channels,
        c.image.size,
        grid * grid,
      );
      for (const entry of ["loss", "denoise", "logits"] as const) {
        assert.deepEqual(inputShapes(m, entry), want[entry], `${m.name} ${entry}`);
      }
      const loss = trace(m);
      assert.deepEqual(Object.keys(loss.outputs).sort(), ["diffusion", "lm", "loss"]);
      const pred = trace(m, { entry: "denoise" }).outputs.pred!;
      assert.equal(shapeOf(pred), want.denoise.x_t);
      const logits = trace(m, { entry: "logits" }).outputs.logits!;
      assert.equal(shapeOf(logits), `f32[${m.dims!.batch}, ${c.seq}, ${c.text.vocab}]`);
      assert.ok(m.data, `${m.name} declares its data`);
    });
  }
  await t.step("text_lm", () => {
    const c = configOf(textLm as AnyModel);
    const B = textLm.dims!.batch!;
    const text = {
      tokens: `i32[${B}, ${c.seq}]`,
      ...Object.fromEntries(LAYOUT_NAMES.map((n) => [n, `i32[${B}, ${c.seq}]`])),
    };
    assert.deepEqual(inputShapes(textLm as AnyModel, "loss"), text);
    assert.deepEqual(inputShapes(textLm as AnyModel, "logits"), text);
    assert.ok(
      trace(textLm as AnyModel).params.every((p) => !p.path.startsWith("encoder")),
      "no image parameters",
    );
  });
});

Deno.test("T1 is the benchmark: sizes, inputs, parameters, FLOPs", () => {
  const c = configOf(t1 as AnyModel);
  assert.equal(c.seq, 1 + 24 + 1 + 64 + 1);
  assert.deepEqual(c.text, { vocab: 260, captionLength: 24 });
  assert.equal(t1.dims!.batch, 32);
  assert.deepEqual(inputShapes(t1 as AnyModel, "loss"), contractInputs(32, 91, 1, 1, 32, 64).loss);

  const params = trace(t1 as AnyModel).params;
  const shapes = Object.fromEntries(params.map((p) => [p.path, p.decl.shape.join("x")]));
  assert.equal(shapes["embed.table"], "260x128");
  assert.equal(shapes["head.w"], "128x260");
  assert.equal(shapes["encoder.proj.w"], "16x128", "linear patch in 16 -> 128");
  assert.equal(shapes["decoder.proj.w"], "128x16", "linear patch out 128 -> 16");
  assert.equal(shapes["time.fc1.w"], "128x128", "sinusoidal features of width 128 into the MLP");
  assert.equal(shapes["backbone.blocks.3.mlp.w1.w"], "128x512", "SwiGLU hidden 512");
  assert.equal(shapes["backbone.blocks.4.norm1.g"], undefined, "4 layers");
  assert.equal(shapes["schedule.alphaBar"], "1000");
  const frozen = params.filter((p) => p.decl.frozen).map((p) => p.path);
  assert.deepEqual(frozen, ["schedule.alphaBar"]);
  const count = params.filter((p) => !p.decl.frozen).reduce(
    (s, p) => s + p.decl.shape.reduce((a, b) => a * b, 1),
    0,
  );
  // By hand: embed + head, time MLP, patch in/out, 4 x (2 RMSNorm gains, q k v o, SwiGLU), final norm.
  const block = 2 * 128 + 4 * 128 * 128 + 3 * 128 * 512;
  const expected = 2 * 260 * 128 + 2 * (128 * 128 + 128) + (16 * 128 + 128) + (128 * 16 + 16) + 4 * block +
    128;
  assert.equal(count, expected);
  for (const p of params.filter((p) => p.decl.init.kind === "normal")) {
    assert.deepEqual(p.decl.init, { kind: "normal", std: 0.02 }, p.path);
  }
  assert.deepEqual(
    { ...t1.training },
    {
      batch: 32,
      lr: 3e-4,
      warmup: 0,
      lrFloor: 3e-4,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.01,
      clip: 0,
    },
  );
  const flops = compile(t1 as AnyModel, { entries: ["trainStep"] }).entries.trainStep!.flops;
  // T1.md: "about 19.5 GFLOP"; the plan also counts attention densely and its backward's recompute.
  assert.ok(flops > 19e9 && flops < 23e9, `T1 trainStep ${flops / 1e9} GFLOP`);
});

Deno.test("bad options are rejected naming the key, the value and what is allowed", async (t) => {
  const rejects = (options: Parameters<typeof transfusion>[0], ...parts: string[]) => {
    assert.throws(() => transfusion(options), (e: unknown) => {
      assert.ok(e instanceof SpecError, String(e));
      for (const part of parts) assert.ok(e.message.includes(part), `"${e.message}" should mention ${part}`);
      return true;
    });
  };
  await t.step("ranges", () => {
    rejects({ backbone: { dim: 0 } }, `"backbone.dim" = 0`, "integer in [4, 65536]");
    rejects({ backbone: { normEps: -1 } }, `"backbone.normEps" = -1`, "(0, 1]");
    rejects({ diffusion: { condDropout: 1.5 } }, `"diffusion.condDropout" = 1.5`, "[0, 1]");
    rejects({ image: { patch: 2.5 } }, `"image.patch" = 2.5`, "integer");
  });
  await t.step("choices", () => {
    rejects({ backbone: { mlp: "relu" as "gelu" } }, `"backbone.mlp" = "relu"`, `"swiglu", "gelu"`);
    rejects({ text: { vocab: 256 as 260 } }, `"text.vocab" = 256`, "260", "261");
    rejects({ backbone: { dimm: 3 } as never }, `"dimm"`, "backbone");
  });
  await t.step("rules between keys", () => {
    rejects({ backbone: { dim: 128, heads: 3 } }, `"backbone.heads" = 3`, "backbone.dim = 128");
    rejects({ backbone: { dim: 24, heads: 4 } }, `"backbone.heads" = 4`, "head dim of 6", "multiple of 4");
    rejects({ image: { size: 30, patch: 4 } }, `"image.patch" = 4`, "image.size = 30");
    rejects({ diffusion: { schedule: "flow" } }, `"diffusion.target" = "eps" (default)`, "velocity");
    rejects({ diffusion: { target: "velocity" } }, `"diffusion.target" = "velocity"`, "DDPM");
    rejects({ seq: 90, text: { captionLength: 24 }, image: { size: 32, patch: 4 } }, `"seq" = 90`, "= 91");
    rejects({ training: { lr: -1 } }, `"training.lr" = -1`);
  });
  await t.step("overrides at trace time go through the same schema", () => {
    assert.throws(
      () => trace(t1 as AnyModel, { config: { "backbone.dim": 65 } }),
      (e: unknown) =>
        e instanceof SpecError && e.message.includes(`"backbone.heads"`) && e.message.includes("65"),
    );
    const shallower = trace(t1 as AnyModel, { config: { "backbone.depth": 2 } });
    assert.equal((shallower.config as TransfusionConfig).backbone.depth, 2);
    assert.ok(shallower.params.some((p) => p.path.startsWith("backbone.blocks.1.")));
    assert.ok(!shallower.params.some((p) => p.path.startsWith("backbone.blocks.2.")));
    assert.equal(
      (shallower.config as TransfusionConfig).backbone.dim,
      128,
      "other keys keep the spec's values",
    );
  });
});

Deno.test("the cosine schedule follows Nichol & Dhariwal; linear and flow are what they say", () => {
  const T = 1000, s = 0.008;
  const { alphaBar, betas } = diffusionSchedule({ schedule: "cosine", T });
  assert.equal(alphaBar.length, T);
  assert.ok(alphaBar[0]! > 0.9999 && alphaBar[0]! < 1, `alpha_bar(0) = ${alphaBar[0]}`);
  for (let t = 1; t < T; t++) assert.ok(alphaBar[t]! < alphaBar[t - 1]!, `decreasing at ${t}`);
  assert.ok(betas.every((b) => b > 0 && b <= MAX_BETA));
  assert.ok(betas[T - 1] === MAX_BETA, "the last beta is clipped");
  // Unclipped, the product telescopes: alpha_bar[t] = f(t + 1) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2).
  const f = (t: number) => Math.cos((t / T + s) / (1 + s) * Math.PI / 2) ** 2;
  for (const t of [0, 1, 10, 250, 500, 900]) {
    assert.ok(Math.abs(alphaBar[t]! - f(t + 1) / f(0)) < 1e-12, `alpha_bar(${t})`);
  }
  const linear = diffusionSchedule({ schedule: "linear", T });
  assert.ok(Math.abs(linear.betas[0]! - 1e-4) < 1e-15 && Math.abs(linear.betas[T - 1]! - 0.02) < 1e-15);
  assert.ok(Math.abs(linear.alphaBar[1]! - (1 - 1e-4) * (1 - linear.betas[1]!)) < 1e-15);
  const flow = diffusionSchedule({ schedule: "flow", T });
  assert.equal(flow.alphaBar.length, 0);
  // The model carries the table it trains with.
  const table = trace(t1 as AnyModel).params.find((p) => p.path === "schedule.alphaBar")!;
  assert.deepEqual(table.decl.init, { kind: "values", data: Array.from(alphaBar) });
});

/** A tiny config with two image slots, so rows can hold 2 images, 1 image and an absent slot. */
function tiny(extra: Parameters<typeof transfusion>[0] = {}) {
  return transfusion({
    name: "tiny_transfusion",
    backbone: { dim: 16, depth: 1, heads: 2, hidden: 24, ...extra.backbone },
    text: { vocab: 261, captionLength: 3 },
    ...(extra.seq ? { seq: extra.seq } : {}),
    image: {
      size: 4,
      channels: 2,
      patch: 2,
      imagesPerRow: 2,
      timestepDim: 8,
      unetWidths: [8, 12],
      ...extra.image,
    },
    diffusion: { T: 50, noiseLimit: 20, ...extra.diffusion },
    batch: 2,
  });
}
const TINY_ROWS: RowPlan[] = [{ imageFirst: false, images: 2 }, { imageFirst: true, images: 1 }];

const GRAD_TOLERANCE = 1e-4;

Deno.test("one WebGPU train step of a tiny Transfusion matches the interpreter", async (t) => {
  const variants: [string, Parameters<typeof transfusion>[0]][] = [
    ["linear, rope2d, add, cosine eps", {}],
    ["unet, learned positions, adanorm, flow velocity", {
      image: { encoder: "unet", positions: "learned", timestep: "adanorm" },
      diffusion: { schedule: "flow", target: "velocity" },
    }],
    ["gelu MLP, layernorm, linear schedule, v target", {
      backbone: { mlp: "gelu", norm: "layernorm" },
      diffusion: { schedule: "linear", target: "v" },
    }],
  ];
  for (const [name, options] of variants) {
    await t.step(name, async () => {
      const m = tiny(options) as AnyModel;
      const dims = { batch: 2 };
      const inputs = randomBatch(configOf(m), TINY_ROWS, 11);
      const plan = compile(m, { dims, verify: true, entries: ["trainStep"] });
      const ex = await Executor.create(plan, { seed: 5 });
      try {
        const params: Record<string, Float32Array> = {};
        for (const p of plan.params) params[p.path] = await ex.getParam(p.path);
        const traced = trace(m, { dims });
        const trained = traced.params.filter((p) => !p.decl.frozen);
        const grads = grad(traced.outputs.loss!, trained.map((p) => p.node));
        const outs = ["loss", "lm", "diffusion"].map((k) => traced.outputs[k]!);
        // The executor feeds seed = [executor seed, step] and the first train step is step 1.
        const ref = interpret([...outs, ...grads], { params, inputs: { ...inputs, seed: [5, 1] } });
        const gpu = await ex.run("trainStep", inputs, { lr: 0 });
        ["loss", "lm", "diffusion"].forEach((k, i) => {
          const want = ref[i]!.data[0]!;
          assert.ok(
            Math.abs(gpu[k]![0]! - want) <= 1e-5 * Math.max(1, Math.abs(want)),
            `${k} ${gpu[k]} vs ${want}`,
          );
        });
        assert.ok(ref[1]!.data[0]! > 0 && ref[2]!.data[0]! > 0, "both terms are live");
        for (const [i, p] of trained.entries()) {
          const got = await ex.getGradient(p.path);
          const want = ref[i + 3]!.data;
          const scale = want.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
          assert.ok(scale > 0, `${p.path} gets a gradient`);
          for (let j = 0; j < want.length; j++) {
            const err = Math.abs(got[j]! - want[j]!) / (scale || 1);
            assert.ok(err <= GRAD_TOLERANCE, `${p.path}[${j}]: gpu ${got[j]} vs interpreter ${want[j]}`);
          }
        }
        for (const p of traced.params.filter((p) => p.decl.frozen)) {
          assert.ok((await ex.getGradient(p.path)).every((g) => g === 0), `${p.path} is frozen`);
        }
      } finally {
        ex.destroy();
      }
    });
  }
});

Deno.test("denoise: pred is finite at both ends of the schedule and zero for absent images", () => {
  const m = tiny({ diffusion: { T: 1000, noiseLimit: 500 } }) as AnyModel;
  const c = configOf(m);
  const dims = { batch: 2 };
  const params = initialParams(m, dims);
  const batch = randomBatch(c, TINY_ROWS, 3);
  const { images, image_first: _, ...rest } = batch;
  const alphaBar = diffusionSchedule(c.diffusion).alphaBar;
  assert.ok(alphaBar[0]! > 0.999, "t = 0 is almost clean");
  for (const t of [0, c.diffusion.T - 1]) {
    const pred = interpretEntry(m, "denoise", dims, params, {
      ...rest,
      x_t: images!,
      t: new Array(2 * c.image.imagesPerRow).fill(t),
    }).pred!;
    assert.ok(pred.every(Number.isFinite), `pred finite at t = ${t}`);
    const perImage = pred.length / 4;
    const absent = pred.subarray(3 * perImage); // row 1, slot 1
    assert.ok(absent.every((v) => v === 0), "an absent image predicts nothing");
    assert.ok(pred.subarray(0, perImage).some((v) => v !== 0));
  }
});

Deno.test("masking: a later image does not reach earlier positions; rows stay apart", () => {
  const m = tiny({ backbone: { initStd: 0.3 } }) as AnyModel;
  const c = configOf(m);
  const dims = { batch: 2 };
  const params = initialParams(m, dims);
  const batch = randomBatch(c, TINY_ROWS, 5);
  const { image_first: _, ...feed } = batch;
  const run = (f: Feed) => interpretEntry(m, "logits", dims, params, f).logits!;
  const before = run(feed);
  // Row 0: BOS, 3 caption, BOI(4), 4 patches(5-8), EOI(9), BOI(10), 4 patches(11-14), EOI(15).
  const perImage = c.image.channels * c.image.size * c.image.size;
  const secondImage = feed.images!.map((v, i) => (i >= perImage && i < 2 * perImage ? -v + 0.5 : v));
  const after = run({ ...feed, images: secondImage });
  const V = c.text.vocab;
  const at = (x: Float64Array, b: number, pos: number) =>
    x.subarray((b * c.seq + pos) * V, (b * c.seq + pos + 1) * V);
  const maxDiff = (b: number, pos: number) =>
    at(before, b, pos).reduce((s, v, i) => Math.max(s, Math.abs(v - at(after, b, pos)[i]!)), 0);
  for (let pos = 0; pos <= 10; pos++) {
    assert.equal(maxDiff(0, pos), 0, `row 0 position ${pos} sees the later image`);
  }
  for (let pos = 11; pos < 16; pos++) {
    assert.ok(maxDiff(0, pos) > 1e-6, `row 0 position ${pos} sees its own image`);
  }
  for (let pos = 0; pos < c.seq; pos++) assert.equal(maxDiff(1, pos), 0, "row 1 never sees row 0");

  // Patches of one image see each other both ways: the first patch sees a change to the last one.
  const denoise = (x: Feed) => interpretEntry(m, "denoise", dims, params, x).pred!;
  const { images, ...rest } = feed;
  const t = new Array(4).fill(10);
  const lastPatchChanged = images!.map((v, i) => (i === perImage - 1 ? v + 1 : v)); // image 0, pixel (3, 3)
  const [p0, p1] = [denoise({ ...rest, x_t: images!, t }), denoise({ ...rest, x_t: lastPatchChanged, t })];
  assert.ok(Math.abs(p0[0]! - p1[0]!) > 1e-9, "patch 0 depends on patch 3 of its image");
  assert.ok(Math.abs(p0[perImage]! - p1[perImage]!) > 1e-9, "the later image sees the earlier one");
});

Deno.test("masking: packed documents do not see each other", () => {
  // One row, two documents of BOS, 3 caption tokens, BOI, 4 patches, EOI: positions 0-9 and 10-19.
  const m = tiny({ backbone: { initStd: 0.3 }, seq: 20 }) as AnyModel;
  const c = configOf(m);
  assert.equal(c.seq, 20);
  const dims = { batch: 1 };
  const params = initialParams(m, dims);
  const { image_first: _, ...feed } = randomBatch(c, [{ imageFirst: false, images: 1, docs: 2 }], 9);
  assert.deepEqual(feed.layout_doc, [...new Array(10).fill(0), ...new Array(10).fill(1)]);
  const perImage = c.image.channels * c.image.size * c.image.size;
  const run = (images: number[]) => interpretEntry(m, "logits", dims, params, { ...feed, images }).logits!;
  const before = run(feed.images!);
  const after = run(feed.images!.map((v, i) => (i < perImage ? 0.5 - v : v))); // document 0's image
  const V = c.text.vocab;
  const changed = (pos: number) =>
    before.subarray(pos * V, (pos + 1) * V).some((v, i) => Math.abs(v - after[pos * V + i]!) > 1e-9);
  assert.ok(changed(9), "document 0's EOI sees its image");
  for (let pos = 10; pos < 20; pos++) assert.ok(!changed(pos), `document 1 position ${pos} sees document 0`);
});

Deno.test("LM targets of a T1 row, drawn by hand", async (t) => {
  // BOS, 24 caption tokens, BOI (25), 64 patches (26..89), EOI (90).
  const T = 91;
  const layout = buildLayout([[{ kind: "text", length: 25, doc: 0 }, {
    kind: "image",
    rows: 8,
    cols: 8,
    doc: 0,
  }]], T);
  const caption = [
    ...new TextEncoder().encode("a handwritten digit 7"),
    SPECIAL.eos,
    SPECIAL.eos,
    SPECIAL.eos,
  ];
  const tokens = [SPECIAL.bos, ...caption, SPECIAL.boi, ...new Array(64).fill(0), SPECIAL.eoi];
  assert.equal(tokens.length, T);
  const inputs: Feed = {
    tokens,
    ...Object.fromEntries(Object.entries(layoutFeed(layout.fields)).map(([k, v]) => [k, Array.from(v)])),
  };
  const weightsOf = (boiTarget: boolean) => {
    const probe = model({
      name: "probe",
      config: {},
      params: () => ({}),
      inputs: () => ({ tokens: input("i32", [1, T]), ...layoutInputs([1, T]) }),
      loss: (_p, x) => positionWeights(lmTargets(boiTarget), layoutOf(x), x.tokens).sum(),
      entries: {
        weights: {
          inputs: () => ({ tokens: input("i32", [1, T]), ...layoutInputs([1, T]) }),
          outputs: (_p, x) => ({
            w: positionWeights(lmTargets(boiTarget), layoutOf(x as never), x.tokens as never),
          }),
        },
      },
    });
    return Array.from(interpretEntry(probe as AnyModel, "weights", {}, {}, inputs).w!);
  };
  await t.step("T1: caption tokens and EOI are targets, BOI is not", () => {
    const want = new Array(T).fill(0);
    for (let i = 0; i <= 23; i++) want[i] = 1; // BOS and caption 0..22 predict caption 0..23
    want[89] = 1; // the last patch predicts EOI
    assert.deepEqual(weightsOf(false), want);
  });
  await t.step("the contract's rule also trains the position before BOI to predict it", () => {
    const want = new Array(T).fill(0);
    for (let i = 0; i <= 24; i++) want[i] = 1;
    want[89] = 1;
    assert.deepEqual(weightsOf(true), want);
  });
  await t.step("T1's LM loss is the mean cross-entropy over exactly those 25 positions", () => {
    assert.equal(configOf(t1 as AnyModel).loss.boiTarget, false);
    // Logits 0 except class 0 at position t, which scores t: no label here is 0, so position t costs
    // log(e^t + V - 1). Counting position 24 or dropping 89 would change the mean.
    const V = 260;
    const probe = model({
      name: "lm_probe",
      config: {},
      params: () => ({}),
      inputs: () => ({ tokens: input("i32", [1, T]), ...layoutInputs([1, T]) }),
      loss: (_p, x) => {
        const scores = iota([1, T, V], 1, "f32").mul(iota([1, T, V], 2, "i32").eq(0).cast("f32"));
        return lmLoss(scores as never, x.tokens, layoutOf(x), false);
      },
    });
    const traced = trace(probe as AnyModel);
    const lm = interpret([traced.outputs.loss!], { inputs })[0]!.data[0]!;
    const counted = [...Array(24).keys(), 89];
    const want = counted.reduce((s, t) => s + Math.log(Math.exp(t) + V - 1), 0) / counted.length;
    assert.ok(Math.abs(lm - want) < 1e-9, `lm ${lm} vs ${want}`);
  });
});
