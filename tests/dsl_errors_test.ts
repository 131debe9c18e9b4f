import assert from "node:assert/strict";
import { z } from "zod";
import { SpecError } from "../compiler/ir/mod.ts";
import { interpret } from "../compiler/mod.ts";
import { compile } from "../compiler/compile.ts";
import {
  full,
  input,
  linear,
  MAX_LITERAL_ELEMENTS,
  model,
  module,
  param,
  type Tensor,
  tensor,
  trace,
  zeros,
} from "../spec/mod.ts";

// Trace-time errors must say which op, what shapes/dtypes it saw, what it expected, and which line
// of the user's spec (here: this file) built the offending node.

const FILE = "tests/dsl_errors_test.ts";

/** The line after the caller's: put the call under test on the line right below. */
function nextLine(): number {
  const frame = new Error().stack!.split("\n")[2]!;
  return Number(/:(\d+):\d+\)?$/.exec(frame)![1]) + 1;
}

function specError(f: () => unknown): SpecError {
  try {
    f();
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  assert.fail("expected a SpecError, but nothing was thrown");
}

function check(err: SpecError, op: string, line: number, ...parts: string[]) {
  assert.equal(err.op, op);
  assert.ok(err.site?.includes(`${FILE}:`), `site ${err.site} should name ${FILE}`);
  assert.match(err.site!, new RegExp(`${FILE}:${line}:\\d+$`));
  assert.ok(err.message.includes(err.site!), "the message repeats the site");
  for (const p of parts) assert.ok(err.message.includes(p), `"${err.message}" should mention ${p}`);
}

const f23 = full([2, 3], 1, "f32");

Deno.test("shape errors name the op, the shapes and the user's line", async (t) => {
  await t.step("matmul inner-dim mismatch", () => {
    const at = nextLine();
    const err = specError(() => f23.matmul(full([4, 5], 1, "f32")));
    check(err, "matmul", at, "f32[2, 3] x f32[4, 5]", "inner dims differ", "k = 3 vs 4");
  });
  await t.step("broadcasting [2, 3] + [4]", () => {
    const at = nextLine();
    const err = specError(() => f23.add(full([4], 1, "f32")));
    check(err, "add", at, "[2, 3] and [4] do not broadcast", "3 vs 4");
  });
  await t.step("reshape with the wrong element count", () => {
    const at = nextLine();
    const err = specError(() => f23.reshape([4, 2]));
    check(err, "reshape", at, "f32[2, 3] (6 elements)", "[4, 2] (8)");
  });
  await t.step("bad axes", () => {
    let at = nextLine();
    check(specError(() => f23.sum(2)), "sum", at, "axis 2 is out of range for rank 2");
    at = nextLine();
    check(specError(() => f23.transpose(0, -3)), "transpose", at, "axis -3 is out of range for rank 2");
    at = nextLine();
    check(specError(() => f23.slice(0, 1, 5)), "slice", at, "axis 0: [1, 5) is outside f32[2, 3]");
  });
  await t.step("dtypes: mixing i32 and f32, exp of an integer", () => {
    const ints = full([2, 3], 1, "i32");
    let at = nextLine();
    check(specError(() => ints.add(f23 as never)), "add", at, "operand dtypes differ: i32 and f32");
    const disguised = ints as never as Tensor<"f32", 2>; // past the type check, as a plain-JS spec could be
    at = nextLine();
    check(specError(() => disguised.exp()), "exp", at, "expects a float tensor, got i32[2, 3]");
  });
});

const configLine = nextLine();
const spec = model({
  name: "errors",
  config: { dim: 3, hidden: 4 },
  dims: { batch: 2 },
  params: (c) => ({ layer: linear(c.dim, c.hidden) }),
  inputs: (c) => ({ x: input("f32", ["batch", c.dim]) }),
  loss: (p, { x }) => p.layer(x).sum(),
});

Deno.test("trace errors point at the spec's own lines", async (t) => {
  await t.step("the model traces when nothing is wrong", () => {
    assert.equal(trace(spec).outputs.loss?.shape.length, 0);
  });
  await t.step("an unbound symbolic dim in input()", () => {
    const inputLine = nextLine();
    const seqInput = () => ({ x: input("f32", ["batch", "seq", 3]) });
    const err = specError(() => trace({ ...spec, inputs: seqInput }));
    check(err, "input", inputLine, `input "x" uses dim "seq"`, "not bound (bound: batch)");
  });
  await t.step("an error inside the loss names the loss's line", () => {
    const lossLine = nextLine();
    const badLoss = (x: Tensor<"f32", 2>) => x.reshape([5, 5]).sum();
    const err = specError(() =>
      trace({ ...spec, loss: (_p: unknown, { x }: { x: Tensor<"f32", 2> }) => badLoss(x) })
    );
    check(err, "reshape", lossLine, "f32[2, 3] (6 elements)", "[5, 5] (25)");
  });
  await t.step("an unknown config key", () => {
    const err = specError(() => trace(spec, { config: { hiddn: 8 } }));
    check(
      err,
      "config",
      configLine,
      `unknown config key "hiddn" (did you mean "hidden"?)`,
      "known keys, nearest first: hidden, dim",
    );
  });
  await t.step("a parameter name with a dot, and a reserved one, name the model's line", () => {
    const dotted = () => ({ "layer.w": param([3, 4], zeros()) });
    let err = specError(() => trace({ ...spec, params: dotted } as never));
    check(err, "params", configLine, `the name "layer.w" at layer.w may not contain "."`);
    const reserved = () => ({ block: module({ name: param([2], zeros()) }, () => (x: Tensor) => x) });
    err = specError(() => trace({ ...spec, params: reserved } as never));
    check(err, "module", configLine, `parameter name "name" at block.name is reserved`);
  });
  await t.step("an out-of-range config value", () => {
    const err = specError(() => trace(spec, { config: { dim: -3 } }));
    check(err, "config", configLine, `config "dim" = -3`);
  });
  await t.step("an out-of-range value against a zod schema", () => {
    const config = z.object({ dim: z.number().int().max(8).default(3), hidden: z.literal(4) });
    const { params, inputs, loss } = spec;
    const schemaLine = nextLine();
    const tuned = model({ name: "tuned", config, params, inputs, loss });
    const err = specError(() => trace(tuned, { config: { dim: 64 } }));
    check(err, "config", schemaLine, `config "dim" = 64`, "8");
  });
});

Deno.test("type-level errors (checked by deno check, and rejected at run time too)", () => {
  const ints = full([2], 1, "i32");
  const floats = full([2], 1, "f32");
  const cube = full([2, 2, 2], 0, "f32");
  const needsMatrix = (m: Tensor<"f32", 2>) => m.rank;
  // controls: these type-check
  assert.equal(ints.add(ints).dtype, "i32");
  assert.equal(floats.exp().dtype, "f32");
  assert.equal(needsMatrix(full([2, 2], 0, "f32")), 2);

  assert.throws(
    // @ts-expect-error: i32 + f32 does not type-check
    () => ints.add(floats),
    SpecError,
  );
  // @ts-expect-error: a rank-3 tensor where Tensor<"f32", 2> is required
  assert.equal(needsMatrix(cube), 3);
  assert.throws(
    // @ts-expect-error: exp needs a float tensor
    () => ints.exp(),
    SpecError,
  );
});

Deno.test("a number operand keeps the tensor's rank (type level, checked by deno check)", () => {
  const s = full([], 2, "f32");
  // Before: R2 could not be inferred from a number, so these were Tensor<"f32", number>.
  const scalar: Tensor<"f32", 0> = s.mul(0.5).add(s);
  const matrix: Tensor<"f32", 2> = f23.mul(0.5).sub(1).div(f23).maximum(0).pow(2);
  const mask: Tensor<"bool", 2> = f23.gt(0.5);
  assert.deepEqual([scalar.rank, matrix.rank, mask.rank], [0, 2, 2]);
  // @ts-expect-error: f23.mul(2) is rank 2, not a scalar
  const wrong: Tensor<"f32", 0> = f23.mul(2);
  assert.equal(wrong.rank, 2);
  // A loss that scales a scalar type-checks (it pointed at `loss:` with a type dump before).
  const scaled = model({
    name: "scaled",
    config: { dim: 3 },
    dims: { batch: 2 },
    params: (c) => ({ layer: linear(c.dim, 2) }),
    inputs: (c) => ({ x: input("f32", ["batch", c.dim]) }),
    loss: (p, { x }) => {
      const total = p.layer(x).sum();
      return total.mul(0.5).add(total);
    },
  });
  assert.equal(trace(scaled).outputs.loss?.shape.length, 0);
});

Deno.test("tensor literals: shape from the nesting, dtype inferred or given, values exact", () => {
  const ints: Tensor<"i32", 1> = tensor([1, 2]);
  const matrix: Tensor<"i32", 2> = tensor([[1, 2], [3, 4]]);
  const fractions: Tensor<"f32", 2> = tensor([[1, 2.5], [3, 4]]);
  const given: Tensor<"f32", 1> = tensor([1, 2], "f32");
  const flags: Tensor<"bool", 1> = tensor([true, false, true]);
  const scalar: Tensor<"f32", 0> = tensor(0.25);
  const runs = tensor([0, 0, 0, 1, 1, 7]);
  // @ts-expect-error: a rank-2 literal is not a Tensor<"i32", 1>
  const flat: Tensor<"i32", 1> = tensor([[1, 2]]);
  // @ts-expect-error: an integer literal is i32 unless a dtype says otherwise
  const notFloat: Tensor<"f32", 1> = tensor([1, 2]);
  const cases: [Tensor, readonly number[], string, number[]][] = [
    [ints, [2], "i32", [1, 2]],
    [matrix, [2, 2], "i32", [1, 2, 3, 4]],
    [fractions, [2, 2], "f32", [1, 2.5, 3, 4]],
    [given, [2], "f32", [1, 2]],
    [flags, [3], "bool", [1, 0, 1]],
    [scalar, [], "f32", [0.25]],
    [runs, [6], "i32", [0, 0, 0, 1, 1, 7]],
    [flat, [1, 2], "i32", [1, 2]],
    [notFloat, [2], "i32", [1, 2]],
    [tensor([[[1], [2]], [[3], [4]]], "u32"), [2, 2, 1], "u32", [1, 2, 3, 4]],
  ];
  for (const [t, shape, dtype, values] of cases) {
    assert.deepEqual(t.shape, shape);
    assert.equal(t.dtype, dtype);
    assert.deepEqual([...interpret([t.node])[0]!.data], values, `${t}`);
  }
  // equal neighbours share one const: [0, 0, 0, 1, 1, 7] is 3 runs
  assert.equal(runs.node.op, "concat");
  assert.equal(runs.node.src.length, 3);
  // arithmetic with a literal (broadcast over rows)
  const shifted = tensor([[1, 2], [3, 4]], "f32").add(tensor([10, 20], "f32"));
  assert.deepEqual([...interpret([shifted.node])[0]!.data], [11, 22, 13, 24]);
});

Deno.test("a literal compiles into a training plan", () => {
  const weighted = model({
    name: "weighted",
    config: { dim: 3 },
    dims: { batch: 2 },
    params: (c) => ({ layer: linear(c.dim, 2) }),
    inputs: (c) => ({ x: input("f32", ["batch", c.dim]) }),
    loss: (p, { x }) => p.layer(x).mul(tensor([0.25, 4], "f32")).sum(),
  });
  const plan = compile(weighted, { adapterClass: "cpu" });
  assert.ok(Object.keys(plan.entries).includes("trainStep"));
});

Deno.test("tensor literal errors name the element and the user's line", async (t) => {
  await t.step("ragged rows", () => {
    const at = nextLine();
    const err = specError(() => tensor([[1, 2], [3]] as never));
    check(err, "tensor", at, "ragged literal: values[1] has shape [1] but values[0] has [2]");
  });
  await t.step("a fraction in an i32 literal", () => {
    const at = nextLine();
    const err = specError(() => tensor([[1, 2], [3, 4.5]], "i32"));
    check(err, "tensor", at, "element 3 ([1, 1]) is 4.5, not an i32", `pass "f32"`);
  });
  await t.step("a negative u32, a boolean among numbers, a 2 in a bool literal", () => {
    let at = nextLine();
    check(specError(() => tensor([1, -1], "u32")), "tensor", at, "element 1 ([1]) is -1, not a u32");
    at = nextLine();
    check(specError(() => tensor([1, true] as never)), "tensor", at, "mixes booleans and numbers");
    at = nextLine();
    const two = specError(() => tensor([0, 2], "bool"));
    check(two, "tensor", at, "element 1 ([1]) is 2; a bool literal takes");
  });
  await t.step("empty and too large", () => {
    let at = nextLine();
    check(specError(() => tensor([])), "tensor", at, "needs at least one element, got shape [0]");
    const big = Array.from({ length: MAX_LITERAL_ELEMENTS + 1 }, (_, i) => i);
    at = nextLine();
    const tooBig = specError(() => tensor(big));
    check(tooBig, "tensor", at, `${MAX_LITERAL_ELEMENTS + 1} elements`, "constant(shape, values)");
  });
  await t.step("a literal of the wrong dtype in arithmetic", () => {
    const at = nextLine();
    const err = specError(() => f23.add(tensor([1, 2, 3]) as never));
    check(err, "add", at, "operand dtypes differ: f32 and i32", `.cast("f32")`);
  });
});
