/**
 * Extending `transfusion()` (spec/transfusion/pieces.ts): default pieces build the very same graph as
 * the builder without pieces; replaced pieces put their parameters under their slot; per-modality
 * and per-image loss weights give the weighted formula, and an image of weight 0 no gradient; a
 * `totalLoss` hook's result is the loss; bad weights and wrong pieces are refused with messages that
 * name them. All on the reference interpreter, at a tiny size.
 */
import assert from "node:assert/strict";
import { grad, interpret, type Node, SpecError } from "../compiler/mod.ts";
import { type AnyModel, concat, linear, module, ones, param, Tensor, trace } from "../spec/mod.ts";
import type { DataSource } from "../spec/data.ts";
import {
  assembleBatch,
  type Block,
  type Codec,
  type Decode,
  defaultPieces,
  type Encode,
  type LossParts,
  type Piece,
  transfusion,
  type TransfusionConfig,
  withImageWeights,
} from "../spec/transfusion/mod.ts";

type T3 = Tensor<"f32", 3>;
type Options = NonNullable<Parameters<typeof transfusion>[0]>;
type Feed = Record<string, ArrayLike<number>>;

// ---------------------------------------------------------------------------------------------
// a tiny model: D = 16, two layers, 4x4 images of 2x2 patches, two image slots per row (seq 17)

const tiny = (extra: Options = {}) =>
  transfusion({
    name: "tiny_extend",
    backbone: { dim: 16, depth: 2, heads: 2, hidden: 32 },
    text: { vocab: 261, captionLength: 4 },
    image: { size: 4, channels: 1, patch: 2, imagesPerRow: 2, timestepDim: 8 },
    batch: 2,
    ...extra,
  }) as AnyModel;

const DIMS = { batch: 2 };
/** Row 0: caption-first with two images; row 1: image-first with one (slot (1, 1) is absent). */
const ROWS: [string, number, "caption-first" | "image-first"][] = [["ab", 2, "caption-first"], [
  "cd",
  1,
  "image-first",
]];

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

function batch(m: AnyModel): Feed {
  const c = trace(m, { dims: DIMS }).config as TransfusionConfig;
  const random = rng(3);
  const examples = ROWS.map(([caption, n, order]) => ({
    caption,
    order,
    images: Array.from({ length: n }, () => Float32Array.from({ length: 16 }, () => 2 * random() - 1)),
  }));
  return { ...assembleBatch(examples, c).inputs, seed: [5, 1] };
}

/** Parameters by path: tables keep their values, the rest random in [-0.3, 0.3] (seeded). */
function paramsOf(m: AnyModel): Record<string, Float32Array> {
  const random = rng(7);
  return Object.fromEntries(
    trace(m, { dims: DIMS }).params.map((p) => {
      const n = p.decl.shape.reduce((a, b) => a * b, 1);
      const init = p.decl.init;
      const values = init.kind === "values"
        ? Float32Array.from(init.data)
        : Float32Array.from({ length: n }, () => 0.6 * random() - 0.3);
      return [p.path, values];
    }),
  );
}

/** The loss entry's outputs (and the gradients of `of` w.r.t. `wrt` inputs) in the interpreter. */
function run(
  m: AnyModel,
  feed: Feed,
  params: Record<string, Float32Array>,
  wrt?: { of: string; input: string },
) {
  const traced = trace(m, { dims: DIMS });
  const names = Object.keys(traced.outputs);
  const extra: Node[] = [];
  if (wrt) {
    const input = traced.inputs.find((n) => n.arg.name === wrt.input)!;
    extra.push(...grad(traced.outputs[wrt.of]!, [input]));
  }
  const values = interpret([...names.map((n) => traced.outputs[n]!), ...extra], { params, inputs: feed });
  const out = Object.fromEntries(names.map((n, i) => [n, values[i]!.data[0]!]));
  return { out, grad: wrt ? Array.from(values[names.length]!.data) : [] };
}

/** A hook that keeps the default total and exposes each image's loss and timestep as metrics. */
const SLOTS = [[0, 0], [0, 1], [1, 0], [1, 1]] as const;
const at = (x: Tensor<"f32", 2>, b: number, n: number) => x.slice(0, b, b + 1).slice(1, n, n + 1).sum();
const exposing = (total: (p: LossParts) => Tensor<"f32", number> = (p) => p.total()) => (p: LossParts) => ({
  loss: total(p),
  metrics: Object.fromEntries(
    SLOTS.flatMap(([b, n]) => [[`image_${b}_${n}`, at(p.images, b, n)], [`t_${b}_${n}`, at(p.t, b, n)]]),
  ),
});

const close = (got: number, want: number, what: string) =>
  assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${what}: ${got} vs ${want}`);

// ---------------------------------------------------------------------------------------------

Deno.test("default pieces, given explicitly, build the builder's own graph and loss", () => {
  const plain = trace(tiny(), { dims: DIMS });
  const explicit = trace(tiny({ pieces: defaultPieces, loss: { textWeight: 1 } }), { dims: DIMS });
  assert.deepEqual(explicit.params.map((p) => p.path), plain.params.map((p) => p.path));
  // Nodes are hash-consed: the same graph is the same node objects, for every output.
  for (const k of ["loss", "lm", "diffusion"]) assert.equal(explicit.outputs[k], plain.outputs[k], k);
  // The unmodified builder's total was lm.add(diffusion.mul(lambda)): the loss is that very node.
  const [lm, diffusion] = [new Tensor(plain.outputs.lm!), new Tensor(plain.outputs.diffusion!)];
  assert.equal(lm.add(diffusion.mul(5)).node, plain.outputs.loss);
  const m = tiny();
  const { out } = run(m, batch(m), paramsOf(m));
  assert.ok(out.lm! > 0 && out.diffusion! > 0, "both terms are live");
  close(out.loss!, out.lm! + 5 * out.diffusion!, "loss = lm + lambda * diffusion");
});

Deno.test("a replaced block, codec and LM head put their parameters under their slots", () => {
  const gated = (c: TransfusionConfig): Piece<Block> =>
    module(
      { inner: defaultPieces.block(c, 0), gate: param([c.backbone.dim], ones()) },
      (p) => (x, attend) => x.add(p.inner(x, attend).sub(x).mul(p.gate)) as T3,
    );
  const codec = (c: TransfusionConfig): Codec => ({
    encoder: module(
      { in: linear(4, c.backbone.dim) },
      (p): Encode => (x) => ({ vectors: p.in(x), skips: [] }),
    ),
    decoder: module({ out: linear(c.backbone.dim, 4) }, (p): Decode => (h) => p.out(h)),
  });
  const head = (c: TransfusionConfig) => linear(c.backbone.dim, c.text.vocab);
  const plain = trace(tiny(), { dims: DIMS }).params.map((p) => p.path);
  const custom = trace(tiny({ pieces: { block: gated, codec, lmHead: head } }), { dims: DIMS });
  const paths = custom.params.map((p) => p.path);
  for (const layer of [0, 1]) {
    assert.ok(paths.includes(`backbone.blocks.${layer}.gate`), `layer ${layer}'s gate`);
    assert.ok(paths.includes(`backbone.blocks.${layer}.inner.attn.wq.w`), `layer ${layer}'s wrapped block`);
    assert.ok(!paths.includes(`backbone.blocks.${layer}.attn.wq.w`), "the default block is gone");
  }
  assert.deepEqual(paths.filter((p) => /^(encoder|decoder|head)\./.test(p)).sort(), [
    "decoder.out.b",
    "decoder.out.w",
    "encoder.in.b",
    "encoder.in.w",
    "head.b",
    "head.w",
  ]);
  const untouched = plain.filter((p) => !/^(backbone\.blocks|encoder|decoder|head)\./.test(p));
  assert.deepEqual(paths.filter((p) => !/^(backbone\.blocks|encoder|decoder|head)\./.test(p)), untouched);
  assert.deepEqual(custom.params.find((p) => p.path === "backbone.blocks.1.gate")!.decl.shape, [16]);
  // The cached entries run the same pieces: the decode step traces through the custom block.
  const decode = trace(tiny({ pieces: { block: gated } }), { dims: DIMS, entry: "decode" });
  assert.ok(decode.params.some((p) => p.path === "backbone.blocks.0.gate"));
});

Deno.test("per-image weights: the weighted formula, and weight 0 gives that image no gradient", () => {
  const m = tiny({
    loss: { textWeight: 0.5, lambda: 3, imageWeights: "input" },
    pieces: { totalLoss: exposing() },
  });
  const feed = batch(m);
  const params = paramsOf(m);
  const weights = [1, 0, 0.5, 2]; // slot (1, 1) is absent: its weight must not count
  const of = { of: "diffusion", input: "images" };
  const weighted = run(m, { ...feed, image_weight: weights }, params, of);
  const o = weighted.out;
  const [i00, i01, i10] = [o.image_0_0!, o.image_0_1!, o.image_1_0!];
  assert.ok(i00 > 0 && i01 > 0 && i10 > 0, "every present image has a loss");
  close(o.diffusion!, (1 * i00 + 0 * i01 + 0.5 * i10) / 3, "diffusion = sum(w * valid * mse) / #images");
  close(o.loss!, 0.5 * o.lm! + 3 * o.diffusion!, "loss = textWeight * lm + lambda * diffusion");

  // Image (0, 1) is the second of row 0: no other image sees it (causal), so with weight 0 nothing
  // of the diffusion loss depends on its pixels. With weight 1 it does.
  const pixels = (g: number[], b: number, n: number) => g.slice((b * 2 + n) * 16, (b * 2 + n + 1) * 16);
  assert.ok(
    pixels(weighted.grad, 0, 1).every((v) => v === 0),
    `zero gradient: ${pixels(weighted.grad, 0, 1)}`,
  );
  assert.ok(pixels(weighted.grad, 0, 0).some((v) => v !== 0), "a weighted image does get a gradient");
  const even = run(m, { ...feed, image_weight: [1, 1, 1, 1] }, params, of);
  assert.ok(pixels(even.grad, 0, 1).some((v) => v !== 0), "with weight 1 the same image gets a gradient");

  // Weights 1 are the unweighted model: same per-image losses, same diffusion loss.
  const plain = run(
    tiny({ loss: { textWeight: 0.5, lambda: 3 }, pieces: { totalLoss: exposing() } }),
    feed,
    params,
  );
  for (const [b, n] of SLOTS) close(plain.out[`image_${b}_${n}`]!, o[`image_${b}_${n}`]!, `image ${b},${n}`);
  close(plain.out.diffusion!, even.out.diffusion!, "weights of 1 change nothing");
  close(plain.out.diffusion!, (i00 + i01 + i10) / 3, "the unweighted mean over the three images");
});

Deno.test("a totalLoss hook's result is the loss, from the builder's parts", () => {
  const hook = exposing(({ lm, images, weight, t, config }) =>
    lm.mul(0.3).add(images.mul(weight).mul(t.div(config.diffusion.T)).sum().mul(2))
  );
  const m = tiny({ pieces: { totalLoss: hook } });
  const feed = batch(m);
  const params = paramsOf(m);
  const { out } = run(m, feed, params);
  const valid = [1, 1, 1, 0];
  const sum = SLOTS.reduce(
    (s, [b, n], i) => s + valid[i]! * out[`image_${b}_${n}`]! * out[`t_${b}_${n}`]! / 1000,
    0,
  );
  close(out.loss!, 0.3 * out.lm! + 2 * sum, "loss = 0.3 * lm + 2 * sum(valid * mse * t / T)");
  assert.ok(out.t_0_0! > 0 && out.t_0_0! < 1000, `t is the DDPM step: ${out.t_0_0}`);
  const plain = run(tiny(), feed, params).out;
  close(out.lm!, plain.lm!, "parts.lm is the builder's LM loss");
  close(out.diffusion!, plain.diffusion!, "the diffusion metric is still the default one");
  assert.ok(Math.abs(out.loss! - plain.loss!) > 1e-3, "the hook's total, not the default, is the loss");
});

Deno.test("bad loss weights are refused, naming the key and the value", () => {
  const refused = (options: Options, ...parts: string[]) => {
    assert.throws(() => tiny(options), (e: Error) => {
      assert.ok(e instanceof SpecError, `a SpecError, got ${e}`);
      for (const part of parts) assert.ok(e.message.includes(part), `${e.message}\n  lacks: ${part}`);
      return true;
    });
  };
  refused({ loss: { textWeight: -1 } }, `option "loss.textWeight" = -1`, "must be a number in [0, 1000000]");
  refused({ loss: { textWeight: Number.NaN } }, `option "loss.textWeight" = NaN`);
  refused({ loss: { imageWeights: "yes" as never } }, `"loss.imageWeights" = "yes"`, `"none", "input"`);
  refused({ loss: { textWeight: 0, lambda: 0 } }, `"loss.textWeight" = 0`, "loss.lambda is 0 too");
  // The same checks guard a CLI override (--set) of a built spec.
  assert.throws(
    () => trace(tiny(), { config: { "loss.textWeight": -2 } }),
    (e: Error) => e.message.includes("loss.textWeight") && e.message.includes("-2"),
  );
  // The image_weight input exists only where asked for.
  assert.ok(!trace(tiny()).inputs.some((n) => n.arg.name === "image_weight"));
  const input = trace(tiny({ loss: { imageWeights: "input" } })).inputs.find((n) =>
    n.arg.name === "image_weight"
  );
  assert.deepEqual(input?.shape, [2, 2]);
});

Deno.test("withImageWeights adds checked per-image weights to every batch", () => {
  const source: DataSource = {
    tokensPerBatch: 34,
    describe: () => "two rows",
    batch: (step) => ({ image_valid: [1, 1, 1, 0], image_first: [0, 0, 1, 1], step: [step] }),
    evalBatch: () => ({ image_valid: [1, 0, 1, 0], image_first: [1, 1, 0, 0] }),
    evalBatches: 1,
    device: {
      tables: {},
      gathers: [],
      indexedBatch: () => ({ batch: { image_valid: [1, 1, 0, 0], image_first: [1, 1, 1, 1] }, rows: {} }),
    },
  };
  const c = trace(tiny({ loss: { imageWeights: "input" } })).config as TransfusionConfig;
  const half = withImageWeights(source, c, (b) => Array.from(b.image_first!, (f) => 1 - f / 2));
  assert.deepEqual(Array.from(half.batch(0, 1).image_weight!), [1, 1, 0.5, 0.5]);
  assert.deepEqual(Array.from(half.evalBatch!(0).image_weight!), [0.5, 0.5, 1, 1]);
  assert.deepEqual(Array.from(half.device!.indexedBatch(0, 1).batch.image_weight!), [0.5, 0.5, 0.5, 0.5]);
  const bad = withImageWeights(source, c, (b) => [1, 1, b.step![0] === 7 ? -0.5 : 1, 1]);
  assert.doesNotThrow(() => bad.batch(6, 1));
  assert.throws(
    () => bad.batch(7, 1),
    /image_weight\[2\] \(row 1, image slot 0\) = -0\.5 at step 7: must be a finite number >= 0/,
  );
  assert.throws(() => withImageWeights(source, c, () => [1, 1]).batch(0, 1), /have 2 values, expected 4/);
  const unweighted = trace(tiny()).config as TransfusionConfig;
  assert.throws(() => withImageWeights(source, unweighted, () => []), /loss: \{ imageWeights: "input" \}/);
});

Deno.test("a piece of the wrong shape is refused at the piece, naming it and the shapes", () => {
  const wide = (): Piece<Block> => module({}, () => (x: T3) => concat([x, x], 2) as T3);
  assert.throws(
    () => trace(tiny({ pieces: { block: wide } }), { dims: DIMS }),
    (e: Error) =>
      e instanceof SpecError && e.message.includes("pieces.block (layer 0)") &&
      e.message.includes("f32[2, 17, 32], expected f32[2, 17, 16]"),
  );
  const notScalar = (p: LossParts) => p.images;
  assert.throws(
    () => trace(tiny({ pieces: { totalLoss: notScalar } }), { dims: DIMS }),
    /pieces\.totalLoss: the loss it returns is f32\[2, 2\], expected f32\[\]/,
  );
});

/** Never run: each line must fail to type-check (`deno check` / `deno test` would report it). */
export function wrongSignaturesDoNotTypeCheck(c: TransfusionConfig): void {
  const scalarBlock = () => module({}, () => (x: T3) => x.sum());
  // @ts-expect-error a block returns [B, T, D], not a scalar
  transfusion({ pieces: { block: scalarBlock } });
  const floatEmbed = () => module({}, () => (x: Tensor<"f32", 2>) => x.unsqueeze(-1) as T3);
  // @ts-expect-error the embedding takes i32 tokens
  transfusion({ pieces: { embed: floatEmbed } });
  // @ts-expect-error a codec has an encoder and a decoder
  transfusion({ pieces: { codec: () => ({ encoder: defaultPieces.codec(c).encoder }) } });
  // @ts-expect-error a loss hook returns a float tensor
  transfusion({ pieces: { totalLoss: (p: LossParts) => p.valid.gt(0) } });
}
