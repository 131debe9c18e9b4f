/**
 * Kernel conformance: every op's WGSL lowering, run on WebGPU, checked against the reference
 * interpreter, forward and gradients, for both adapter classes (each picks its own kernel variants;
 * today the matmul differs). An op enters by being in the registry: the table in
 * conformance_cases.ts is keyed by op, and the suite fails when an op has no case or its cases never
 * build it.
 *
 * Tolerances (|gpu - ref| against the f64 interpreter on the same f32-rounded inputs):
 *   f32:            |gpu - ref| <= 1e-5 * (1 + |ref|), transcendental ops and 5000-term sums
 *                   included (on lavapipe the worst case uses a fifth of it); the RNG ops state
 *                   their own bound and why;
 *   i32, u32, bool: exact.
 * Gradients use the tolerance of the case they belong to; loss = sum over outputs of sum(out * r)
 * for a fixed random r, and every param gradient is compared to interpret(grad(loss, params)).
 */
import assert from "node:assert/strict";
import { grad } from "../compiler/autodiff.ts";
import { compileGraph } from "../compiler/compile.ts";
import { interpret } from "../compiler/interpreter.ts";
import { ALL_OPS, type DType, isFloat, type Node, node, type Op, toposort } from "../compiler/ir/mod.ts";
import type { AdapterClass } from "../kernels/matmul.ts";
import { Executor } from "../runtime/executor.ts";
import {
  type Case,
  CASES,
  COMPOSITE_CASES,
  Fixture,
  seeded,
  type Tolerance,
  uniform,
} from "./conformance_cases.ts";

const DEFAULT_TOL: Tolerance = { abs: 1e-5, rel: 1e-5, why: "f32 default" };
const ADAPTER_CLASSES = ["cpu", "gpu"] as const;
/** Mismatches listed per output before the rest are only counted. */
const SHOWN = 5;

interface Output {
  readonly name: string;
  readonly caseName: string;
  readonly node: Node;
  readonly tol: Tolerance;
}

/** One batch of cases: their outputs, the loss over the differentiable ones, and the leaves. */
interface Batch {
  readonly fixture: Fixture;
  readonly outputs: readonly Output[];
  /** The outputs in the loss (a subset of `outputs`). */
  readonly differentiable: readonly Output[];
  readonly loss: Node | undefined;
  readonly tolOf: ReadonlyMap<string, Tolerance>;
  /** Cases whose gradients must be zero everywhere, or must not be (a check of nothing). */
  readonly zeroGrads: ReadonlySet<string>;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** sum(out * r) over every axis, as a scalar. */
function dotWithRandom(out: Node, f: Fixture): Node {
  const r = f.input(out.shape, "f32", uniform(-1, 1));
  const product = node("mul", [out, r], null);
  if (out.shape.length === 0) return product;
  return node("reshape", [node("sum", [product], { axes: out.shape.map((_, i) => i) })], { shape: [] });
}

const asList = (built: Node | readonly Node[]): readonly Node[] =>
  Array.isArray(built) ? built as readonly Node[] : [built as Node];

function buildBatch(label: string, cases: readonly Case[]): Batch {
  const fixture = new Fixture(seeded(hash(label)));
  const outputs: Output[] = [];
  const differentiable: Output[] = [];
  const terms: Node[] = [];
  const tolOf = new Map<string, Tolerance>();
  const zeroGrads = new Set<string>();
  for (const c of cases) {
    const caseName = `${label}: ${c.name}`;
    fixture.caseName = caseName;
    const tol = c.tol ?? DEFAULT_TOL;
    tolOf.set(caseName, tol);
    if (c.grads === "zero") zeroGrads.add(caseName);
    const nodes = asList(c.build(fixture));
    const hasParams = toposort(nodes).some((n) => n.op === "param");
    nodes.forEach((n, k) => {
      const out = { name: `${caseName} #${k}`, caseName, node: n, tol };
      outputs.push(out);
      if (isFloat(n.dtype) && hasParams && c.grads !== false) {
        differentiable.push(out);
        terms.push(dotWithRandom(n, fixture));
      }
    });
  }
  const loss = terms.length ? terms.reduce((a, b) => node("add", [a, b], null)) : undefined;
  return { fixture, outputs, differentiable, loss, tolOf, zeroGrads };
}

/** Lines describing where `gpu` departs from `ref`; empty when they agree. */
function compare(what: string, dtype: DType, gpu: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance) {
  if (gpu.length !== ref.length) return [`${what}: ${gpu.length} values, expected ${ref.length}`];
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < ref.length; i++) {
    const [g, r] = [gpu[i]!, ref[i]!];
    const ok = isFloat(dtype) ? Math.abs(g - r) <= tol.abs + tol.rel * Math.abs(r) : g === r;
    if (ok) continue;
    if (++count <= SHOWN) bad.push(`${what}[${i}]: gpu ${g}, reference ${r}`);
  }
  if (count > SHOWN) bad.push(`${what}: ${count - SHOWN} more of ${ref.length} differ`);
  if (count && isFloat(dtype)) bad.push(`  (tolerance ${tol.abs} + ${tol.rel} |ref|: ${tol.why})`);
  return bad;
}

/** Compiles `outputs`, sets the params, runs `entry` once and returns the executor with its results. */
async function runPlan(
  batch: Batch,
  outputs: Record<string, Node>,
  entry: string,
  adapterClass: AdapterClass,
) {
  const { fixture } = batch;
  const plan = compileGraph(outputs, { adapterClass, grads: entry === "gradients" });
  const executor = await Executor.create(plan);
  try {
    for (const p of plan.params) await executor.setParam(p.path, fixture.params[p.path]!);
    const inputs = plan.entries[entry]!.inputs.map((s) => [s.name, fixture.inputs[s.name]!]);
    return { executor, plan, got: await executor.run(entry, Object.fromEntries(inputs)) };
  } catch (e) {
    executor.destroy();
    throw e;
  }
}

/**
 * Runs a batch on the device; returns the mismatches of each case (empty lists when it passes).
 * Two plans: the entry "forward" of all outputs, and the entry "gradients" of the differentiable
 * outputs and the loss. Lavapipe compiles a kernel on its first dispatch, so the second plan's
 * unused "forward" entry costs nothing, and forward-only cases are not compiled twice.
 */
async function runBatch(batch: Batch, adapterClass: AdapterClass): Promise<Map<string, string[]>> {
  const { fixture, outputs, differentiable, loss } = batch;
  const failures = new Map<string, string[]>([...batch.tolOf.keys()].map((c) => [c, []]));
  const fail = (caseName: string, lines: string[]) => failures.get(caseName)!.push(...lines);
  const env = { params: fixture.params, inputs: fixture.inputs };
  const checkOutputs = (list: readonly Output[], got: Record<string, ArrayLike<number>>, entry: string) => {
    const refs = interpret(list.map((o) => o.node), env);
    list.forEach((o, i) => {
      fail(o.caseName, compare(`${entry} ${o.name}`, o.node.dtype, got[o.name]!, refs[i]!.data, o.tol));
    });
  };

  const forward = await runPlan(
    batch,
    Object.fromEntries(outputs.map((o) => [o.name, o.node])),
    "forward",
    adapterClass,
  );
  forward.executor.destroy();
  checkOutputs(outputs, forward.got, "forward");
  if (!loss) return failures;

  const named = Object.fromEntries(differentiable.map((o) => [o.name, o.node]));
  const { executor, plan, got } = await runPlan(batch, { ...named, loss }, "gradients", adapterClass);
  try {
    checkOutputs(differentiable, got, "gradients");
    const params = toposort([loss]).filter((n): n is Node<"param"> => n.op === "param");
    const refs = interpret(grad(loss, params), env);
    assert.deepEqual(plan.params.map((p) => p.path).sort(), params.map((p) => p.arg.path).sort());
    for (const [i, p] of params.entries()) {
      const path = p.arg.path;
      const caseName = fixture.owner.get(path)!;
      const ref = refs[i]!.data;
      const tol = batch.tolOf.get(caseName)!;
      fail(caseName, compare(`d loss / d ${path}`, "f32", await executor.getGradient(path), ref, tol));
      const zero = ref.every((x) => x === 0);
      if (zero !== batch.zeroGrads.has(caseName)) {
        fail(caseName, [`d loss / d ${path} is ${zero ? "" : "not "}zero in the reference`]);
      }
    }
    return failures;
  } finally {
    executor.destroy();
  }
}

/** Ops each case list builds, so a list that never builds its own op is caught. */
function opsBuilt(cases: readonly Case[]): Set<Op> {
  const f = new Fixture(seeded(1));
  const found = new Set<Op>();
  for (const c of cases) {
    for (const n of toposort(asList(c.build(f)))) found.add(n.op);
  }
  return found;
}

Deno.test("conformance covers every op in the registry", () => {
  assert.deepEqual(Object.keys(CASES).sort(), [...ALL_OPS].sort());
  for (const op of ALL_OPS) {
    assert.ok(CASES[op].length > 0, `op ${op} has no conformance case`);
    assert.ok(opsBuilt(CASES[op]).has(op), `the cases of ${op} never build a ${op} node`);
  }
});

for (const adapterClass of ADAPTER_CLASSES) {
  Deno.test(`kernel conformance on adapter class ${adapterClass}`, async (t) => {
    const groups: [string, readonly Case[]][] = [
      ...ALL_OPS.map((op): [string, readonly Case[]] => [op, CASES[op]]),
      ["composite", COMPOSITE_CASES],
    ];
    // CONFORMANCE_ONLY=conv2d,matmul runs those groups alone (a focused check of one op's kernels).
    const only = Deno.env.get("CONFORMANCE_ONLY")?.split(",");
    for (const [label, cases] of groups.filter(([label]) => !only || only.includes(label))) {
      await t.step(label, async (t) => {
        const failures = await runBatch(buildBatch(label, cases), adapterClass);
        for (const [caseName, lines] of failures) {
          await t.step(caseName.slice(label.length + 2), () => {
            assert.deepEqual(lines, [], `${caseName} on ${adapterClass}:\n${lines.join("\n")}`);
          });
        }
      });
    }
  });
}
