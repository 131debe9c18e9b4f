/**
 * Steps in flight (runtime/train/in_flight.ts) and the on-device moving average: the queue keeps
 * order and depth; a pipelined run equals the synchronous loop bit for bit; a NaN is caught at the
 * step where it first appears even with steps queued behind it; the device average follows the host
 * formula.
 */
import assert from "node:assert/strict";
import tiny from "./fixtures/tiny_regression.ts";
import { TINY_SPEC_PATH, tinyOptions, trained, withTempDir } from "./fixtures/tiny_runs.ts";
import type { AnyModel } from "../spec/mod.ts";
import { compile } from "../compiler/mod.ts";
import { Executor, type RunResults, type SubmittedRun } from "../runtime/executor.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { RUN_FILES, train, TrainError } from "../runtime/train/mod.ts";
import { StepsInFlight } from "../runtime/train/in_flight.ts";
import { DeviceAverage } from "../runtime/train/device_average.ts";
import { WeightAverage } from "../runtime/train/weight_average.ts";
import { resolveConfig } from "../spec/mod.ts";

const withDir = (f: (dir: string) => Promise<void>) => withTempDir("in_flight_test_", f);

const submitted = (step: number, results: Promise<RunResults>): SubmittedRun => ({
  entry: "trainStep",
  step,
  results,
});

Deno.test("the queue of steps in flight: order, depth, continuity, and a discard that settles all", async () => {
  const q = new StepsInFlight(3);
  const resolvers: ((r: RunResults) => void)[] = [];
  const pending = () => new Promise<RunResults>((resolve) => resolvers.push(resolve));
  q.add(submitted(1, pending()), 0.1);
  q.add(submitted(2, pending()), 0.2);
  const never = Promise.resolve({ outputs: {} });
  assert.throws(() => q.add(submitted(4, never), 0.4), /step 4 submitted after step 2/);
  q.add(submitted(3, pending()), 0.3);
  assert.ok(q.full);
  assert.throws(() => q.add(submitted(4, never), 0.4), /already 3 steps in flight/);
  // Results arriving out of order still come out oldest first.
  resolvers[1]!({ outputs: { loss: Float32Array.of(2) } });
  resolvers[0]!({ outputs: { loss: Float32Array.of(1) }, gradNorm: 0.5 });
  const first = await q.next();
  assert.equal(first.step, 1);
  assert.equal(first.lr, 0.1);
  assert.equal(first.out.gradNorm, 0.5);
  assert.equal((await q.next()).out.outputs.loss![0], 2);
  assert.equal(q.size, 1);
  assert.equal(q.newest, 3);
  // A step that fails on the device is awaited by discard, not left as an unhandled rejection.
  q.add(submitted(4, Promise.reject(new Error("device lost"))), 0.4);
  resolvers[2]!({ outputs: {} });
  await q.discard();
  assert.equal(q.size, 0);
  assert.equal(q.newest, undefined);
  await assert.rejects(q.next(), /no step in flight/);
  assert.throws(() => new StepsInFlight(0), /depth must be an integer >= 1, got 0/);
});

Deno.test("a pipelined run equals the synchronous loop bit for bit: losses, parameters, moments, average", async () => {
  await withDir(async (dir) => {
    const base = { steps: 20, lr: 0.02, warmup: 3, logEvery: 1, checkpointEvery: 7, ema: 0.9, emaEvery: 3 };
    const sync = await train(tinyOptions(`${dir}/sync`, { settings: { ...base, inFlight: 1 } }));
    const piped = await train(tinyOptions(`${dir}/piped`, { settings: { ...base, inFlight: 8 } }));
    assert.equal(piped.settings.inFlight, 8);
    assert.equal(piped.records.length, 20);
    assert.deepEqual(piped.records.map(trained), sync.records.map(trained));
    const [a, b] = [await loadCheckpoint(`${dir}/sync`), await loadCheckpoint(`${dir}/piped`)];
    assert.equal(b.run.step, 20);
    for (const file of ["model", "optimizer", "ema"] as const) {
      for (const [name, t] of a[file]!.tensors) {
        assert.deepEqual(b[file]!.tensors.get(name)!.data, t.data, `${file} ${name}`);
      }
    }
  });
});

Deno.test("a fault with steps in flight stops at the step it first appears; the last good checkpoint stays", async (t) => {
  // From step 11 on (0-based batch 10) the targets are bad; checkpoints every 4 steps, 8 in flight.
  const from = (bad: number) =>
    ({
      ...tiny,
      data: (c: never, dims: Readonly<Record<string, number>>) => {
        const good = tiny.data!(c, dims);
        const batch = (step: number, seed: number) => {
          const { x, y } = good.batch(step, seed);
          return { x: x!, y: step < 10 ? y! : Array.from(y!, () => bad) };
        };
        return { ...good, batch };
      },
    }) as AnyModel;
  const cases = [
    // 1e30 is finite on the host; its square overflows f32 on the device: the loss of step 11 is inf.
    {
      name: "a loss that overflows",
      bad: 1e30,
      message: /the loss is Infinity at step 11; stopping without/,
    },
    // A NaN input is refused before it is trained on, after the steps in flight before it are checked.
    { name: "a NaN in a batch", bad: NaN, message: /the batch of step 11 holds y\[0\] = NaN .*step 8 stays/ },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await withDir(async (dir) => {
        const out = `${dir}/run`;
        const logged: number[] = [];
        await assert.rejects(
          train({
            model: from(c.bad),
            specPath: TINY_SPEC_PATH,
            out,
            settings: { steps: 30, checkpointEvery: 4, logEvery: 1, inFlight: 8 },
            onLog: (r) => logged.push(r.step),
          }),
          (e: Error) =>
            e instanceof TrainError && c.message.test(e.message) &&
            /checkpoint of step 8 stays/.test(e.message),
        );
        assert.deepEqual(
          logged,
          Array.from({ length: 10 }, (_, i) => i + 1),
          "every good step logged, in order",
        );
        const kept = await loadCheckpoint(out);
        assert.equal(kept.run.step, 8, "the last good checkpoint stays");
        for (const [name, tensor] of kept.model.tensors) {
          assert.ok([...tensor.data].every((v) => Number.isFinite(Number(v))), `${name} is finite`);
        }
        const log = (await Deno.readTextFile(`${out}/${RUN_FILES.log}`)).trim().split("\n");
        assert.equal(log.length, 10);
      });
    });
  }
});

Deno.test("the device moving average follows the host formula, folded every k steps", async () => {
  const plan = compile(tiny, { entries: ["trainStep"], average: true });
  assert.ok(plan.entries.emaUpdate, "an emaUpdate entry");
  assert.deepEqual(plan.buffers.find((b) => b.name === "ema")?.role, "average");
  assert.equal(compile(tiny, { entries: ["trainStep"] }).entries.emaUpdate, undefined, "only when asked");
  const data = tiny.data!(resolveConfig(tiny.config as never, {}, "tiny") as never, { ...tiny.dims });
  const ex = await Executor.create(plan, { seed: 3 });
  try {
    const [decay, every] = [0.8, 3];
    const device = await DeviceAverage.start(ex, decay);
    const host = new WeightAverage(decay, await ex.getAllParams(), 0);
    for (let s = 0; s < 10; s++) {
      await ex.run("trainStep", data.batch(s, 3), { lr: 0.05 });
      if (ex.step % every === 0) {
        await device.update(ex.step);
        host.update(await ex.getAllParams(), ex.step);
      }
    }
    await device.update(ex.step);
    host.update(await ex.getAllParams(), ex.step);
    assert.equal(device.step, 10);
    const got = (await ex.readParamBuffers(["ema"])).get("ema")!;
    const params = await ex.getAllParams();
    let moved = false;
    for (const [path, want] of host.values) {
      const have = got.get(path)!;
      want.forEach((w, i) => {
        assert.ok(
          Math.abs(have[i]! - w) <= 1e-6 * Math.max(1, Math.abs(w)),
          `${path}[${i}] ${have[i]} vs ${w}`,
        );
        moved ||= have[i] !== params.get(path)![i];
      });
    }
    assert.ok(moved, "the average is not the last parameters");
    await assert.rejects(device.update(4), /step 4 is before the average's step 10/);
  } finally {
    ex.destroy();
  }
  const plain = await Executor.create(compile(tiny, { entries: ["trainStep"] }));
  try {
    await assert.rejects(
      DeviceAverage.start(plain, 0.9),
      /keeps no moving average: compile it with average: true/,
    );
  } finally {
    plain.destroy();
  }
});
