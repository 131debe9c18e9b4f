import assert from "node:assert/strict";
import { IRError, type Node, node } from "../compiler/ir/mod.ts";
import { printGraph } from "../compiler/print.ts";
import { verify } from "../compiler/verify.ts";
import { trace } from "../spec/model.ts";
import tiny from "../examples/tiny.ts";

const a = node("input", [], { name: "a", shape: [2], dtype: "f32" });
const b = node("input", [], { name: "b", shape: [2], dtype: "f32" });

let forgedIds = 1e9;
/** An object literal posing as a Node, the way a buggy pass might build one by hand. */
function forge(fields: Partial<Omit<Node, "src" | "op">> & { op: string; src: readonly unknown[] }): Node {
  return { id: forgedIds++, dtype: "f32", shape: [2], arg: null, site: "forged.ts:3:7", ...fields } as Node;
}

function rejects(roots: readonly Node[], ...patterns: RegExp[]) {
  assert.throws(() => verify(roots), (e) => {
    assert.ok(e instanceof IRError, `expected an IRError, got ${e}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

Deno.test("verify accepts traced and hand-built graphs", () => {
  const t = trace(tiny);
  verify(Object.values(t.outputs));
  verify(t.inputs);
  const seed = node("input", [], { name: "seed", shape: [2], dtype: "u32" });
  const r = node("rand_normal", [seed], { shape: [2], stream: 0 });
  const joined = node("concat", [a, r, b], { axis: 0 });
  const idx = node("iota", [], { shape: [3], axis: 0, dtype: "i32" });
  const rows = node("gather", [node("reshape", [joined], { shape: [3, 2] }), idx], null);
  const padded = node("pad", [rows], { before: [0, 1], after: [1, 0], value: -Infinity });
  verify([padded, node("scatter_add", [idx, rows], { rows: 4 }), a]);
});

Deno.test("verify walks deep graphs without recursion", () => {
  // Well-formed by hand (node() is slow to build 100k nodes); deeper than a recursive walk survives.
  let x: Node = a;
  for (let i = 0; i < 100_000; i++) x = forge({ op: "neg", src: [x], site: undefined });
  verify([x]);
  const broken = forge({ op: "neg", src: [x], shape: [3] });
  rejects([broken], new RegExp(`%${broken.id} neg`));
});

Deno.test("verify rejects forged nodes and names them", async (t) => {
  await t.step("stored shape or dtype differs from the shape rule", () => {
    const wrongShape = forge({ op: "add", src: [a, b], shape: [3] });
    rejects(
      [wrongShape],
      new RegExp(`%${wrongShape.id} add`),
      /forged\.ts:3:7/,
      /f32\[3\] differs .* f32\[2\]/,
    );
    rejects([forge({ op: "add", src: [a, b], dtype: "i32" })], /stored type i32\[2\] differs .* f32\[2\]/);
    rejects([forge({ op: "matmul", src: [a, b] })], /matmul.*shape rule rejects it/);
  });
  await t.step("the broken node is found below valid ones", () => {
    const bad = forge({ op: "exp", src: [a], shape: [5] });
    const top = node("neg", [bad], null); // node() trusts its sources' stored types
    rejects([top], new RegExp(`%${bad.id} exp`));
  });
  await t.step("wrong arity, missing source, unknown op", () => {
    rejects([forge({ op: "add", src: [a] })], /add .*takes 2 source\(s\), has 1/);
    rejects([forge({ op: "add", src: [a, undefined] })], /source 1 is missing/);
    rejects([forge({ op: "mul", src: [a, null] })], /source 1 is missing/);
    rejects([forge({ op: "frobnicate", src: [a] })], /unknown op "frobnicate"/);
  });
  await t.step("a cycle", () => {
    const x = forge({ op: "exp", src: [] as Node[] });
    const y = forge({ op: "log", src: [x] });
    (x.src as Node[]).push(y);
    rejects([node("neg", [a], null), y], /cycle: %\d+ log -> %\d+ exp -> %\d+ log/);
  });
  await t.step("malformed args", () => {
    rejects(
      [forge({ op: "reshape", src: [a], arg: { shape: [NaN] }, shape: [NaN] })],
      /arg shape .*non-integer/,
    );
    rejects([forge({ op: "sum", src: [a], arg: { axes: [0.5] }, shape: [1] })], /arg axes/);
    rejects([forge({ op: "sum", src: [a], arg: {} as never, shape: [1] })], /arg axes .*missing/);
    rejects([forge({ op: "neg", src: [a], arg: { axes: [0] } as never })], /takes no arg/);
    const nanFill = { before: [1], after: [0], value: NaN };
    rejects([forge({ op: "pad", src: [a], arg: nanFill, shape: [3] })], /arg value/);
    const castTo = { dtype: "f64" } as never;
    rejects([forge({ op: "cast", src: [a], arg: castTo })], /arg dtype .*not a dtype/);
    rejects([forge({ op: "neg", src: [a], shape: [-2] })], /stored shape \[-2\] has a bad dimension/);
  });
  await t.step("numbering: a source newer than its consumer, two nodes with one id", () => {
    rejects([forge({ id: -1, op: "neg", src: [a] })], /source 0 \(%\d+ input\) is not older/);
    const imposter = forge({ id: a.id, op: "input", src: [], arg: { name: "z", shape: [2], dtype: "f32" } });
    rejects([a, imposter], new RegExp(`id ${a.id} is also used`));
  });
});

Deno.test("printGraph: one line per node, renumbered, with args and outputs", () => {
  // Names unlike tiny's: hash-consing would hand the trace below these nodes, with this file's sites.
  const x = node("input", [], { name: "h", shape: [2, 3], dtype: "f32" });
  const w = node("param", [], { path: "enc.w", shape: [3, 4], dtype: "f32" });
  const y = node("matmul", [x, w], null);
  const s = node("sum", [y], { axes: [1] });
  const view = node("permute", [node("slice", [y], { starts: [0, 1], ends: [2, 3] })], { perm: [1, 0] });
  assert.ok(x.id > 0, "the printer must renumber");
  const text = printGraph({ loss: s, view }, { sites: false });
  assert.equal(
    text,
    [
      `%0 = input "h" : f32[2, 3]`,
      `%1 = param "enc.w" : f32[3, 4]`,
      `%2 = matmul(%0, %1) : f32[2, 4]`,
      `%3 = sum(%2) axes=[1] : f32[2, 1]`,
      `%4 = slice(%2) [0:2, 1:3] : f32[2, 2]`,
      `%5 = permute(%4) perm=[1, 0] : f32[2, 2]`,
      `loss = %3`,
      `view = %5`,
      `# 6 nodes: input 1, param 1, sum 1, matmul 1, permute 1, slice 1`,
    ].join("\n"),
  );
  assert.equal(printGraph({ loss: s, view }, { sites: false }), text);

  const withSites = printGraph([s], { summary: false }).split("\n");
  assert.equal(withSites.length, 5);
  assert.match(
    withSites[2]!,
    /^%2 = matmul\(%0, %1\) : f32\[2, 4\] +# tests\/verify_print_test\.ts:\d+:\d+$/,
  );
  assert.equal(withSites[4], "out[0] = %3");
});

Deno.test("printGraph: leaves and fill values", () => {
  const fill = node("const", [], { value: 0.1 + 0.2, shape: [], dtype: "f32" });
  const seed = node("input", [], { name: "seed", shape: [2], dtype: "u32" });
  const noise = node("rand_uniform", [seed], { shape: [3], stream: 4 });
  const masked = node("pad", [noise], { before: [1], after: [0], value: -Infinity });
  const pos = node("iota", [], { shape: [4], axis: 0, dtype: "i32" });
  const text = printGraph({ fill, masked, pos }, { sites: false, summary: false });
  assert.match(text, /^%0 = const 0\.3 : f32\[\]$/m);
  assert.match(text, /^%2 = rand_uniform\(%1\) stream=4 : f32\[3\]$/m);
  assert.match(text, /^%3 = pad\(%2\) before=\[1\] after=\[0\] value=-inf : f32\[4\]$/m);
  assert.match(text, /^%4 = iota axis=0 : i32\[4\]$/m);
  assert.doesNotMatch(text, /^#/m);
});

Deno.test("printGraph: a traced model, deterministic across calls and traces", () => {
  const first = printGraph(trace(tiny).outputs);
  assert.equal(printGraph(trace(tiny).outputs), first);
  const lines = first.split("\n");
  // 2 inputs, 4 params, per layer matmul + bias (reshape, expand, add), tanh, sub, mul, then the
  // mean: sum, reshape, const, div
  assert.equal(
    lines.at(-1),
    "# 21 nodes: input 2, param 4, const 1, tanh 1, add 2, sub 1, mul 1, div 1, " +
      "sum 1, matmul 2, reshape 3, expand 2",
  );
  assert.equal(lines.at(-2), "loss = %20");
  assert.ok(lines.some((l) => /^%\d+ = param "l1\.w" : f32\[3, 4\]/.test(l)));
  assert.ok(
    lines.some((l) => /^%\d+ = matmul\(%\d+, %\d+\) : f32\[2, 4\] +# examples\/tiny\.ts:9:\d+$/.test(l)),
  );
  assert.ok(lines.some((l) => /^%\d+ = sum\(%\d+\) axes=\[0, 1\] : f32\[1, 1\]/.test(l)));
});
