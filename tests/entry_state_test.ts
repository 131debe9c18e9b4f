/**
 * Persistent entry state: a spec entry declares `state`, the plan gives it a slot in the "state"
 * buffer, and the executor keeps it across runs of every entry that declares it.
 */
import assert from "node:assert/strict";
import { compile, type Plan } from "../compiler/mod.ts";
import { Executor } from "../runtime/mod.ts";
import { SpecError } from "../compiler/ir/mod.ts";
import { type AnyModel, input, linear, model, trace } from "../spec/mod.ts";
import type { Tensor } from "../spec/mod.ts";

Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.set("XDG_RUNTIME_DIR", "/tmp/xdg");

type T1 = Tensor<"f32", 1>;
const counterState = () => ({ counter: input("f32", [4]) });

/** A tiny model whose entries accumulate into, scale and read one state vector `counter` [4]. */
const counting = model({
  name: "counting",
  config: {},
  params: () => ({ l: linear(4, 1) }),
  inputs: () => ({ x: input("f32", [2, 4]) }),
  loss: (p, { x }) => p.l(x).square().mean(),
  entries: {
    // counter += x; returns the new total (read back) as well.
    add: {
      inputs: () => ({ x: input("f32", [4]) }),
      state: counterState,
      outputs: (_p, x) => {
        const next = (x.counter as T1).add(x.x as T1);
        return { counter: next, total: next.sum() };
      },
    },
    // counter *= k elementwise; nothing read back but the state.
    scale: {
      inputs: () => ({ k: input("f32", [4]) }),
      state: counterState,
      outputs: (_p, x) => ({ counter: (x.counter as T1).mul(x.k as T1) }),
    },
    // Reads the state and returns it unchanged (no copy step needed).
    peek: {
      inputs: () => ({}),
      state: counterState,
      outputs: (_p, x) => ({ counter: x.counter!, doubled: (x.counter as T1).mul(2) }),
    },
  },
});

const withEntry = (name: string, def: NonNullable<AnyModel["entries"]>[string]): AnyModel => ({
  ...counting as AnyModel,
  entries: { ...(counting as AnyModel).entries, [name]: def },
});

const ENTRIES = ["add", "scale", "peek"];

async function check(plan: Plan) {
  const ex = await Executor.create(plan);
  try {
    assert.deepEqual([...await ex.getState("counter")], [0, 0, 0, 0], "zeroed at creation");
    const a = await ex.run("add", { x: [1, 2, 3, 4] });
    assert.deepEqual([...a.total!], [10]);
    assert.deepEqual(Object.keys(a), ["total"], "state is not read back as an output");
    const b = await ex.run("add", { x: [0.5, 0.5, 0.5, 0.5] });
    assert.deepEqual([...b.total!], [12]);
    await ex.run("scale", { k: [2, 0, -1, 1] });
    assert.deepEqual([...await ex.getState("counter")], [3, 0, -3.5, 4.5], "persists across entries");
    assert.deepEqual([...(await ex.run("peek", {})).doubled!], [6, 0, -7, 9]);
    assert.deepEqual([...await ex.getState("counter")], [3, 0, -3.5, 4.5], "peek leaves it");
    await ex.resetState();
    assert.deepEqual([...await ex.getState("counter")], [0, 0, 0, 0], "resetState zeroes");
    await ex.setState("counter", [1, 1, 1, 1]);
    assert.deepEqual([...(await ex.run("add", { x: [1, 2, 3, 4] })).total!], [14], "setState is read");
    await assert.rejects(ex.run("add", { x: [1, 2, 3, 4], counter: [0, 0, 0, 0] }), /persistent state/);
    await assert.rejects(ex.getState("cache"), /no state "cache"; state: counter/);
    await assert.rejects(ex.setState("counter", [1, 2]), /expects 4 values, got 2/);
    // The training entries are untouched by the state.
    const loss = await ex.run("forward", { x: [1, 2, 3, 4, 5, 6, 7, 8] });
    assert.ok(Number.isFinite(loss.loss![0]!));
    return [...await ex.getState("counter")];
  } finally {
    ex.destroy();
  }
}

Deno.test("entry state", async (t) => {
  const plan = compile(counting, { entries: ["forward", ...ENTRIES], verify: true });

  await t.step("the plan: one slot in the state buffer, entries name their state", () => {
    assert.deepEqual(plan.state, [{ name: "counter", shape: [4], dtype: "f32", buffer: "state", offset: 0 }]);
    assert.deepEqual(plan.buffers.find((b) => b.name === "state"), {
      name: "state",
      role: "state",
      bytes: 16,
    });
    for (const e of ENTRIES) assert.deepEqual(plan.entries[e]!.state, ["counter"], e);
    assert.equal(plan.entries.forward!.state, undefined);
    const copies = (e: string) => plan.entries[e]!.steps.filter((s) => s.kind === "copy");
    // counter + x and counter * k read each old element only where they write the new one, so
    // their kernels write the slot in place (compiler/lower/state_in_place.ts): no copy step.
    for (const e of ["add", "scale"]) {
      assert.equal(copies(e).length, 0, `${e} writes its state in place`);
      const writes = plan.entries[e]!.steps.filter((s) =>
        s.kind === "dispatch" &&
        plan.kernels[s.kernel]!.bindings.some((b) => b.buffer === "state" && b.access === "read_write")
      );
      assert.equal(writes.length, 1, `${e}: one kernel writes the state buffer`);
    }
    assert.equal(copies("peek").length, 0, "an unchanged state needs no copy");
    assert.ok(!plan.entries.add!.inputs.some((s) => s.name === "counter"));
    assert.ok(!plan.entries.add!.outputs.some((s) => s.name === "counter"));
  });

  await t.step(
    "a state also read elsewhere is copied after the last kernel, which sees the old value",
    async () => {
      // The sum reads the old counter: writing the new one in place could run before it.
      const twice = withEntry("twice", {
        inputs: () => ({}),
        state: counterState,
        outputs: (_p: never, x: Record<string, Tensor>) => ({
          counter: (x.counter as T1).mul(2),
          before: (x.counter as T1).sum(),
        }),
      } as never);
      const p = compile(twice, { entries: ["add", "twice"], verify: true });
      const copy = p.entries.twice!.steps.at(-1)!;
      assert.equal(copy.kind, "copy");
      assert.deepEqual(copy.kind === "copy" && { buffer: copy.buffer, offset: copy.offset }, {
        buffer: "state",
        offset: 0,
      });
      const ex = await Executor.create(p);
      try {
        await ex.run("add", { x: [1, 2, 3, 4] });
        assert.deepEqual([...(await ex.run("twice", {})).before!], [10]);
        assert.deepEqual([...await ex.getState("counter")], [2, 4, 6, 8]);
        assert.deepEqual([...(await ex.run("twice", {})).before!], [20]);
      } finally {
        ex.destroy();
      }
    },
  );

  await t.step("the state persists across runs and entries on the GPU", async () => {
    await check(plan);
  });

  await t.step("a plan with state round-trips through JSON and runs the same", async () => {
    const reloaded = JSON.parse(JSON.stringify(plan)) as Plan;
    assert.deepEqual(reloaded, plan);
    assert.deepEqual(await check(reloaded), await check(plan));
  });

  await t.step("the traced entry lists its state apart from inputs and outputs", () => {
    const traced = trace(counting, { entry: "add" });
    assert.deepEqual(traced.inputs.map((n) => n.arg.name), ["x"]);
    assert.deepEqual(Object.keys(traced.outputs), ["total"]);
    assert.deepEqual(traced.state.map((s) => [s.name, s.input.shape, s.output.shape]), [["counter", [4], [
      4,
    ]]]);
    assert.deepEqual(trace(counting).state, []);
  });

  await t.step("mismatched declarations are errors that name the entry and the state", () => {
    const missing = withEntry("forgets", {
      inputs: () => ({}),
      state: counterState,
      outputs: (_p: never, x: Record<string, Tensor>) => ({ out: x.counter! }),
    } as never);
    assert.throws(
      () => trace(missing, { entry: "forgets" }),
      (e: unknown) =>
        e instanceof SpecError && /entry "forgets" declares state "counter" \(f32\[4\]\)/.test(e.message) &&
        /outputs: out/.test(e.message),
    );
    const reshaped = withEntry("reshapes", {
      inputs: () => ({}),
      state: counterState,
      outputs: (_p: never, x: Record<string, Tensor>) => ({ counter: x.counter!.reshape([2, 2]) }),
    } as never);
    assert.throws(
      () => trace(reshaped, { entry: "reshapes" }),
      /entry "reshapes" returns state "counter" as f32\[2, 2\], but it is declared f32\[4\]/,
    );
    const retyped = withEntry("casts", {
      inputs: () => ({}),
      state: counterState,
      outputs: (_p: never, x: Record<string, Tensor>) => ({ counter: x.counter!.cast("i32") }),
    } as never);
    assert.throws(() => trace(retyped, { entry: "casts" }), /as i32\[4\], but it is declared f32\[4\]/);
    const both = withEntry("both", {
      inputs: counterState,
      state: counterState,
      outputs: (_p: never, x: Record<string, Tensor>) => ({ counter: x.counter! }),
    } as never);
    assert.throws(() => trace(both, { entry: "both" }), /declares "counter" as an input and as state/);
    const wider = withEntry("wider", {
      inputs: () => ({}),
      state: () => ({ counter: input("f32", [5]) }),
      outputs: (_p: never, x: Record<string, Tensor>) => ({ counter: x.counter! }),
    } as never);
    assert.throws(
      () => compile(wider, { entries: ["add", "wider"] }),
      /state "counter" is f32\[5\] in entry "wider" but f32\[4\] in entry "add"/,
    );
  });

  await t.step("a plan whose entry names a state it lacks is refused", async () => {
    const broken = { ...plan, entries: { ...plan.entries, peek: { ...plan.entries.peek!, state: ["kv"] } } };
    await assert.rejects(Executor.create(broken), /entry "peek" uses state "kv", which the plan lacks/);
  });
});
