import assert from "node:assert/strict";
import { maskAt, type MaskExpr } from "../compiler/ir/mask.ts";
import { SpecError } from "../compiler/ir/mod.ts";
import {
  all,
  buildLayout,
  causal,
  inPrefix,
  maskSource,
  none,
  prefix,
  printMask,
  resolveConfig,
  sameDocument,
  sameSpan,
  type Segment,
  window,
} from "../spec/mod.ts";
import demo from "../examples/transfusion_demo.ts";
import { attentionMasks, attentionMasksText } from "../cli/explain_masks.ts";
import { randInt, randomLayout, randomMask, seeded } from "./layout_cases.ts";

// The grids below are drawn by hand from the rules' meaning, not copied from the printer's output.

const TRANSFUSION = sameDocument().and(causal().or(sameSpan("image")));
const LEGEND = "'#' attends, '.' masked (a line per query, a column per key)";
const text = (length: number, doc = 0, prefix = false): Segment => ({ kind: "text", length, doc, prefix });
const image = (rows: number, cols: number, doc = 0, markers = true): Segment => ({
  kind: "image",
  rows,
  cols,
  doc,
  markers,
});
const lines = (...l: string[]) => l.join("\n") + "\n";

Deno.test("causal over 4 positions needs no layout", () => {
  assert.equal(
    printMask(causal(), { T: 4 }),
    lines(
      "causal()",
      LEGEND,
      "row 0:",
      "  0 1 2 3",
      "0 # . . .",
      "1 # # . .",
      "2 # # # .",
      "3 # # # #",
    ),
  );
});

Deno.test("a caption then a 2x2 image: the image sees itself whole, its EOI sees everything", () => {
  // t t BOI p p p p EOI: BOI and EOI are text positions.
  const layout = buildLayout([[text(2), image(2, 2)]], 8);
  assert.equal(
    printMask(TRANSFUSION, layout),
    lines(
      `sameDocument() & (causal() | sameSpan("image"))`,
      LEGEND,
      "row 0:",
      "    0 1 2 3 4 5 6 7",
      "    t t t[p p p p]t",
      "0 t # . . . . . . .",
      "1 t # # . . . . . .",
      "2 t # # # . . . . .",
      "3 p # # # # # # # .",
      "4 p # # # # # # # .",
      "5 p # # # # # # # .",
      "6 p # # # # # # # .",
      "7 t # # # # # # # #",
    ),
  );
});

Deno.test("packed documents: none sees the other, padding sees nothing", () => {
  const layout = buildLayout([[text(2, 0), text(3, 1)]], 6);
  assert.equal(
    printMask(sameDocument().and(causal()), layout),
    lines(
      "sameDocument() & causal()",
      LEGEND,
      "row 0:",
      "    0 1 2 3 4 5",
      "    t t|t t t|.",
      "    0 0 1 1 1 .",
      "0 t # . . . . .",
      "1 t # # . . . .",
      "2 t . . # . . .",
      "3 t . . # # . .",
      "4 t . . # # # .",
      "5 . . . . . . .",
    ),
  );
});

Deno.test("prefixes: per document from the layout, and a fixed prefix(n)", () => {
  // document 0: 2 prefix + 2 text; document 1: 1 prefix + 1 text; 1 padding.
  const layout = buildLayout([[text(2, 0, true), text(2, 0), text(1, 1, true), text(1, 1)]], 7);
  assert.equal(
    printMask(sameDocument().and(causal().or(inPrefix())), layout),
    lines(
      "sameDocument() & (causal() | inPrefix())",
      LEGEND,
      "row 0:",
      "    0 1 2 3 4 5 6",
      "    t t t t|t t|.",
      "    0 0 0 0 1 1 .",
      "    ^ ^     ^",
      "0 t # # . . . . .",
      "1 t # # . . . . .",
      "2 t # # # . . . .",
      "3 t # # # # . . .",
      "4 t . . . . # . .",
      "5 t . . . . # # .",
      "6 . . . . . . . .",
    ),
  );
  assert.equal(
    printMask(causal().or(prefix(2)), { T: 4 }, { attend: "x", masked: "-" }),
    lines(
      "causal() | prefix(2)",
      "'x' attends, '-' masked (a line per query, a column per key)",
      "row 0:",
      "  0 1 2 3",
      "0 x x - -",
      "1 x x - -",
      "2 x x x -",
      "3 x x x x",
    ),
  );
});

Deno.test("two images side by side without markers, and one row of a batch", () => {
  const layout = buildLayout([[text(1)], [image(1, 2, 0, false), image(1, 1, 0, false)]], 3);
  assert.equal(
    printMask(TRANSFUSION, layout, { row: 1 }),
    lines(
      `sameDocument() & (causal() | sameSpan("image"))`,
      LEGEND,
      "row 1:",
      "    0 1 2",
      "   [p p|p]",
      "0 p # # .",
      "1 p # # .",
      "2 p # # #",
    ),
  );
  const both = printMask(TRANSFUSION, layout);
  assert.match(both, /row 0:\n {4}0 1 2\n {4}t\|\. \.\n0 t # \. \.\n1 \. \. \. \.\n2 \. \. \. \.\nrow 1:/);
});

Deno.test("every cell is the oracle's (maskAt), for random rules over random layouts", () => {
  const rand = seeded(7);
  for (let c = 0; c < 40; c++) {
    const layout = randomLayout(rand, 2, 12);
    const expr: MaskExpr = randomMask(rand, randInt(rand, 0, 3), layout.T);
    const text = printMask(expr, layout);
    const grids = text.split(/row \d+:\n/).slice(1);
    assert.equal(grids.length, layout.B);
    grids.forEach((grid, b) => {
      const rows = grid.trimEnd().split("\n").slice(-layout.T);
      rows.forEach((line, i) => {
        const cells = line.slice(line.length - (2 * layout.T - 1)).split(" ");
        cells.forEach((cell, j) => {
          const want = maskAt(expr, layout.fields, layout.T, b, i, j) ? "#" : ".";
          assert.equal(cell, want, `case ${c} ${maskSource(expr)}, row ${b}, q ${i}, k ${j}`);
        });
      });
    });
  }
});

Deno.test("maskSource writes every kind as spec code", () => {
  assert.equal(maskSource(TRANSFUSION), `sameDocument() & (causal() | sameSpan("image"))`);
  assert.equal(
    maskSource(
      all().and(none().or(window(3))).or(prefix(4).not()).and(sameSpan("text").and(inPrefix()).not()),
    ),
    `((all() & (none() | window(3))) | !prefix(4)) & !(sameSpan("text") & inPrefix())`,
  );
  assert.equal(maskSource({ kind: "sameSpan", modality: 7 }), `sameSpan("modality 7")`);
});

Deno.test("printMask refuses a layout that lacks the rule's fields, or a row outside the batch", () => {
  assert.throws(
    () => printMask(TRANSFUSION, { T: 4, fields: { doc: [0, 0, 0, 0] } }),
    (e: Error) =>
      e instanceof SpecError && e.message.includes(
        `the rule sameDocument() & (causal() | sameSpan("image")) reads layout field(s) modality, span, ` +
          "which the layout lacks (it has doc)",
      ) && /tests\/mask_print_test\.ts:\d+/.test(e.site ?? ""),
  );
  assert.throws(
    () => printMask(causal(), { T: 2, fields: { doc: [0] } }),
    /"doc" has 1 values, expected B \* T = 2/,
  );
  assert.throws(() => printMask(causal(), { B: 2, T: 2 }, { row: 2 }), /row 2 is outside 0\.\.1/);
  assert.throws(() => printMask(causal(), { T: 257 }), /T = 257 is over the 256 positions a grid can show/);
});

Deno.test("explain's attention masks: the demo spec's rule, read off the traced graph", () => {
  const masks = attentionMasks(demo, { config: {}, dims: {} }, ["trainStep", "forward"]);
  assert.equal(masks.length, 1);
  const [m] = masks;
  assert.equal(m!.entry, "loss");
  assert.deepEqual(m!.planEntries, ["trainStep", "forward"]);
  assert.equal(m!.rules.length, 1);
  assert.equal(m!.rules[0]!.rule, `sameDocument() & (causal() | sameSpan("image"))`);
  // one attention op per layer of the demo spec
  const depth =
    (resolveConfig(demo.config as never, {}, "demo") as { backbone: { depth: number } }).backbone.depth;
  assert.equal(m!.rules[0]!.ops, depth);
  assert.deepEqual(m!.rules[0]!.fields, ["doc", "modality", "span"]);
  assert.deepEqual(attentionMasksText(masks), [
    "attention masks (query i may attend key j where the rule holds):",
    "  loss (trainStep, forward):",
    `    sameDocument() & (causal() | sameSpan("image"))  [${depth} attention ops; reads layout doc, modality, span]`,
  ]);
});

Deno.test("deno task explain prints the attention mask rule", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "explain", "examples/transfusion_demo.ts", "--entry", "forward"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(
    stdout,
    /\nattention masks \(query i may attend key j where the rule holds\):\n {2}loss \(forward\):\n {4}sameDocument\(\) & \(causal\(\) \| sameSpan\("image"\)\) {2}\[\d+ attention ops; reads layout doc, modality, span\]/,
  );
});
