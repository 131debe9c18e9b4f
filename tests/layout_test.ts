import assert from "node:assert/strict";
import { interpret } from "../compiler/interpreter.ts";
import { denseMask, LAYOUT_FIELDS, type LayoutFields } from "../compiler/ir/mask.ts";
import { node } from "../compiler/ir/mod.ts";
import {
  densePositions,
  describePosition,
  positionAt,
  type PositionExpr,
  positionReads,
} from "../compiler/ir/position.ts";
import { input, model, trace } from "../spec/model.ts";
import { type Layout, layoutInputs, layoutOf } from "../spec/layout.ts";
import { buildLayout, layoutFeed, layoutInputName } from "../spec/layout_builder.ts";
import { causal, maskDense, sameDocument, sameSpan } from "../spec/mask.ts";
import {
  isImage,
  isText,
  isToken,
  isValid,
  Position,
  positionMask,
  positionWeights,
} from "../spec/position.ts";
import { Tensor } from "../spec/tensor.ts";
import { DRAWN, drawn, drawnFields, randInt, randomLayout, randomPosition, seeded } from "./layout_cases.ts";

const BOI = 1;
const EOI = 2;
/** Transfusion's LM targets: the next position is text and the own token is not BOI. */
const LM_TARGETS = isText().next().and(isToken(BOI).not());

Deno.test("buildLayout fills the hand-drawn fields", async (t) => {
  for (const d of DRAWN) {
    await t.step(d.name, () => {
      const built = buildLayout(d.rows, d.T);
      assert.equal(built.B, d.B);
      for (const f of LAYOUT_FIELDS) assert.deepEqual(Array.from(built.fields[f]), d.fields[f], `field ${f}`);
    });
  }
  await t.step("where the segments landed", () => {
    const d = drawn("two images"); // t B p p E B p p E
    const placed = buildLayout(d.rows, d.T).placed.map(({ b, start, end, span, patchStart }) => ({
      b,
      start,
      end,
      span,
      patchStart,
    }));
    assert.deepEqual(placed, [
      { b: 0, start: 0, end: 1, span: -1, patchStart: 0 },
      { b: 0, start: 1, end: 5, span: 0, patchStart: 2 },
      { b: 0, start: 5, end: 9, span: 1, patchStart: 6 },
    ]);
  });
  await t.step("an image without BOI/EOI markers", () => {
    const { fields } = buildLayout([[{ kind: "image", rows: 1, cols: 3, doc: 2, markers: false }]], 4);
    assert.deepEqual(Array.from(fields.modality), [1, 1, 1, -1]);
    assert.deepEqual(Array.from(fields.pos), [0, 1, 2, 0]);
    assert.deepEqual(Array.from(fields.col), [0, 1, 2, 0]);
    assert.deepEqual(Array.from(fields.doc), [2, 2, 2, -1]);
  });
});

Deno.test("buildLayout rejects what it cannot lay out", () => {
  assert.throws(
    () =>
      buildLayout([[{ kind: "text", length: 3, doc: 0 }, { kind: "image", rows: 2, cols: 2, doc: 0 }]], 8),
    /row 0 needs 9 positions \(text 3 \+ image 6\), but T = 8/,
  );
  assert.throws(
    () => buildLayout([[{ kind: "text", length: 2, doc: -1 }]], 4),
    /doc must be an integer >= 0/,
  );
  assert.throws(
    () => buildLayout([[{ kind: "text", length: 0, doc: 0 }]], 4),
    /length must be an integer >= 1/,
  );
  assert.throws(() => buildLayout([[{ kind: "image", rows: 0, cols: 2, doc: 0 }]], 4), /rows must be/);
  assert.throws(
    () =>
      buildLayout([[
        { kind: "text", length: 1, doc: 0 },
        { kind: "text", length: 1, doc: 1 },
        { kind: "text", length: 1, doc: 0 },
      ]], 4),
    /row 0 returns to document 0 after another one/,
  );
  assert.throws(() => buildLayout([], 4), /at least one row/);
  assert.throws(() => buildLayout([[]], 0), /T must be a positive integer, got 0/);
});

Deno.test("layoutInputs and layoutOf carry the layout through a traced model", () => {
  const decls = layoutInputs();
  assert.deepEqual(Object.keys(decls), LAYOUT_FIELDS.map((f) => `layout_${f}`));
  for (const d of Object.values(decls)) assert.deepEqual([d.dtype, d.dims], ["i32", ["batch", "seq"]]);
  assert.deepEqual(layoutInputs([2, "seq"]).layout_doc.dims, [2, "seq"]);

  const probe = model({
    name: "layout_probe",
    config: {},
    params: () => ({}),
    inputs: () => ({ tokens: input("i32", ["batch", "seq"]), ...layoutInputs() }),
    loss: (_p, x) => positionWeights(LM_TARGETS, layoutOf(x), x.tokens).sum(),
    entries: {
      mask: {
        inputs: () => layoutInputs(),
        outputs: (_p, x) => ({
          mask: maskDense(sameDocument().and(causal().or(sameSpan("image"))), layoutOf(x as never)),
        }),
      },
    },
  });
  const d = drawn("two packed documents"); // t t | B p p E t
  const fields = drawnFields(d);
  const tokens = Int32Array.from([5, 6, BOI, 0, 0, EOI, 7]);
  const dims = { batch: d.B, seq: d.T };
  const loss = trace(probe, { dims });
  assert.deepEqual(loss.inputs.map((n) => n.arg.name).sort(), ["tokens", ...Object.keys(decls)].sort());
  const [count] = interpret([loss.outputs.loss!], { inputs: { tokens, ...layoutFeed(fields) } });
  assert.equal(count!.data[0], 4); // targets at 0, 1, 4, 5 (drawn below)

  const masked = trace(probe, { dims, entry: "mask" });
  const [mask] = interpret([masked.outputs.mask!], { inputs: layoutFeed(fields) });
  assert.deepEqual(
    Array.from(mask!.data),
    Array.from(denseMask(
      sameDocument().and(causal().or(sameSpan("image"))).expr,
      fields,
      d.B,
      d.T,
    )),
  );
});

Deno.test("layoutOf names what is missing", () => {
  const t = new Tensor<"i32", 2>(node("input", [], { name: "layout_doc", shape: [1, 4], dtype: "i32" }));
  // A partial layout is fine (a rule reads only its fields); none at all is named, and so is a
  // field a rule reads that the layout lacks.
  assert.throws(() => layoutOf({ tokens: t } as never), /the inputs have no layout_<field> input \(tokens\)/);
  const partial = layoutOf({ layout_doc: t });
  assert.deepEqual(Object.keys(partial), ["doc"]);
  assert.throws(
    () => maskDense(sameDocument().and(sameSpan("image")), partial),
    /reads layout field\(s\) modality, span, which the layout lacks \(it has doc\)/,
  );
});

// ---------------------------------------------------------------------------------------------
// position rules

function cpuWeights(rule: Position, name: string, tokens: readonly number[]): number[] {
  const d = drawn(name);
  return Array.from(densePositions(rule.expr, drawnFields(d), Int32Array.from(tokens), d.B, d.T));
}

Deno.test("position rules on hand-drawn layouts give the hand-drawn weights", async (t) => {
  await t.step("LM targets, caption then image: text before BOI and the last patch (it predicts EOI)", () => {
    // t t B p p p p E
    assert.deepEqual(cpuWeights(LM_TARGETS, "caption then a 2x2 image", [5, 6, BOI, 0, 0, 0, 0, EOI]), [
      1,
      1,
      0,
      0,
      0,
      0,
      1,
      0,
    ]);
  });
  await t.step("LM targets, image first: from the last patch on, not into padding", () => {
    // B p p E t t .
    assert.deepEqual(
      cpuWeights(LM_TARGETS, "a 1x2 image then text", [BOI, 0, 0, EOI, 7, 8, 0]),
      [0, 0, 1, 1, 1, 0, 0],
    );
  });
  await t.step("LM targets, two packed documents and padding rows", () => {
    // t t | B p p E t
    assert.deepEqual(
      cpuWeights(LM_TARGETS, "two packed documents", [5, 6, BOI, 0, 0, EOI, 7]),
      [1, 1, 0, 0, 1, 1, 0],
    );
    // t t . / . . .
    assert.deepEqual(cpuWeights(LM_TARGETS, "padding rows", [5, 6, 0, 0, 0, 0]), [1, 0, 0, 0, 0, 0]);
  });
  await t.step("the token part: a BOI token among text is not a target", () => {
    const tokens = [3, BOI, 4, 5];
    assert.deepEqual(cpuWeights(isText().next(), "text only", tokens), [1, 1, 1, 0]);
    assert.deepEqual(cpuWeights(LM_TARGETS, "text only", tokens), [1, 0, 1, 0]);
  });
  await t.step("image patches, valid positions, and shifts off the row", () => {
    const tokens = [BOI, 0, 0, EOI, 7, 8, 0]; // B p p E t t .
    const name = "a 1x2 image then text";
    assert.deepEqual(cpuWeights(isImage(), name, tokens), [0, 1, 1, 0, 0, 0, 0]);
    assert.deepEqual(cpuWeights(isValid().not(), name, tokens), [0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(cpuWeights(isImage().prev(), name, tokens), [0, 0, 1, 1, 0, 0, 0]);
    assert.deepEqual(cpuWeights(isValid().next().not(), name, tokens), [0, 0, 0, 0, 0, 1, 1]);
    assert.deepEqual(cpuWeights(isValid().shift(7), name, tokens), [0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(cpuWeights(isText().shift(-2).or(isToken(8)), name, tokens), [0, 0, 1, 0, 0, 1, 1]);
  });
  await t.step("positionAt agrees", () => {
    const d = drawn("a 1x2 image then text");
    const tokens = Int32Array.from([BOI, 0, 0, EOI, 7, 8, 0]);
    assert.equal(positionAt(LM_TARGETS.expr, drawnFields(d), tokens, d.T, 0, 2), true);
    assert.equal(positionAt(LM_TARGETS.expr, drawnFields(d), tokens, d.T, 0, 1), false);
  });
});

Deno.test("describePosition, positionReads, and missing token ids", () => {
  assert.equal(describePosition(LM_TARGETS.expr), "next(isText) & !isToken(1)");
  assert.equal(String(isImage().or(isValid()).not().shift(-3)), "shift(-3, !(isImage | isValid))");
  assert.deepEqual(positionReads(LM_TARGETS.expr), { fields: ["modality"], tokens: true });
  assert.deepEqual(positionReads(isValid().prev().expr), { fields: ["doc"], tokens: false });
  const d = drawn("text only");
  assert.throws(
    () => densePositions(isToken(3).expr, drawnFields(d), undefined, d.B, d.T),
    /reads token ids/,
  );
  const layout = layoutNodes(d.B, d.T);
  assert.throws(() => positionMask(isToken(3), layout), /reads token ids; pass the tokens tensor/);
});

function layoutNodes(B: number, T: number): Layout {
  const make = (f: (typeof LAYOUT_FIELDS)[number]) =>
    new Tensor<"i32", 2>(node("input", [], { name: layoutInputName(f), shape: [B, T], dtype: "i32" }));
  return {
    doc: make("doc"),
    modality: make("modality"),
    span: make("span"),
    pos: make("pos"),
    row: make("row"),
    col: make("col"),
  };
}

function interpretedWeights(
  rule: PositionExpr,
  fields: LayoutFields,
  tokens: Int32Array,
  B: number,
  T: number,
) {
  const tokenInput = new Tensor<"i32", 2>(node("input", [], { name: "tokens", shape: [B, T], dtype: "i32" }));
  const weights = positionWeights(new Position(rule), layoutNodes(B, T), tokenInput);
  assert.deepEqual([weights.dtype, weights.shape], ["f32", [B, T]]);
  return interpret([weights.node], { inputs: { tokens, ...layoutFeed(fields) } })[0]!.data;
}

Deno.test("positionWeights (interpreted) equals densePositions (CPU)", () => {
  const rand = seeded(17);
  for (let c = 0; c < 60; c++) {
    const { fields, B, T } = randomLayout(rand, 3, 24);
    const tokens = Int32Array.from({ length: B * T }, () => randInt(rand, 0, 3));
    const rule = c === 0 ? LM_TARGETS.expr : randomPosition(rand, 3);
    assert.deepEqual(
      Array.from(interpretedWeights(rule, fields, tokens, B, T)),
      Array.from(densePositions(rule, fields, tokens, B, T)),
      `case ${c}: ${describePosition(rule)}`,
    );
  }
});
