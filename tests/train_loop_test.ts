/**
 * The training library on a tiny regression spec: the loss falls, the run directory holds what it
 * should, a resumed run reproduces an uninterrupted one bit for bit, and bad resumes are refused.
 */
import assert from "node:assert/strict";
import { exists } from "../runtime/train/run_dir.ts";
import tiny from "./fixtures/tiny_regression.ts";
import { TINY_SPEC_PATH, tinyOptions, trained, withTempDir } from "./fixtures/tiny_runs.ts";
import type { AnyModel } from "../spec/mod.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import {
  type LogRecord,
  registerSampleHook,
  RUN_FILES,
  type SampleContext,
  train,
  TrainError,
  type TrainOptions,
} from "../runtime/train/mod.ts";
import { resolveSettings } from "../runtime/train/settings.ts";
import { resolveRunConfig } from "../runtime/train/bindings.ts";
import { z } from "zod";
import { LogClock, logLine } from "../runtime/train/progress.ts";

const SPEC_PATH = TINY_SPEC_PATH;
const withDir = (f: (dir: string) => Promise<void>) => withTempDir("train_loop_test_", f);
const options = tinyOptions;

Deno.test("the loss falls and the run directory holds checkpoint, log and loss curve", async () => {
  await withDir(async (dir) => {
    const out = `${dir}/run`;
    const result = await train(options(out, { settings: { steps: 40, logEvery: 1, checkpointEvery: 25 } }));
    assert.equal(result.step, 40);
    assert.deepEqual(result.records.map((r) => r.step), Array.from({ length: 40 }, (_, i) => i + 1));
    const mean = (rs: readonly LogRecord[]) => rs.reduce((s, r) => s + r.loss, 0) / rs.length;
    const [first, last] = [mean(result.records.slice(0, 5)), mean(result.records.slice(-5))];
    assert.ok(last < first * 0.1, `mean loss of the first 5 steps ${first}, of the last 5 ${last}`);
    assert.ok(
      result.records.every((r) => Number.isFinite(r.metrics.mae!)),
      "every record has the mae metric",
    );

    const checkpoint = await loadCheckpoint(out);
    assert.equal(checkpoint.run.step, 40);
    assert.deepEqual(checkpoint.run.spec, {
      path: SPEC_PATH,
      name: "tiny_regression",
      hash: checkpoint.run.spec.hash,
    });
    assert.match(checkpoint.run.spec.hash, /^[0-9a-f]{64}$/);
    assert.deepEqual(checkpoint.run.config, { dim: 4, hidden: 16, noise: 0.05 });
    assert.deepEqual(checkpoint.run.dims, { batch: 8 });
    assert.deepEqual(checkpoint.run.rng, { seed: 0 });
    assert.deepEqual(checkpoint.run.data, { epoch: 0, index: 40 });
    assert.equal(checkpoint.run.metrics.loss, result.records.at(-1)!.loss);
    assert.deepEqual([...checkpoint.model.tensors.keys()].sort(), ["l1.b", "l1.w", "l2.b", "l2.w"]);
    for (const [name, t] of checkpoint.model.tensors) {
      assert.ok([...t.data].every((v) => Number.isFinite(Number(v))), `${name} holds finite values`);
    }

    const log = (await Deno.readTextFile(`${out}/${RUN_FILES.log}`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(log, result.records.map(logLine));
    const svg = await Deno.readTextFile(`${out}/${RUN_FILES.lossCurve}`);
    assert.ok(
      svg.startsWith("<svg") && svg.includes(">loss<") && svg.includes(">mae<"),
      "loss.svg draws loss and mae",
    );
    const saved = JSON.parse(await Deno.readTextFile(`${out}/${RUN_FILES.settings}`));
    assert.equal(saved.steps, 40);
    assert.equal(saved.lr, tiny.training!.lr);
  });
});

Deno.test("stopping at step 3 and resuming gives the losses and parameters of a straight run", async () => {
  await withDir(async (dir) => {
    // Warmup and cosine decay, so a resume that got the schedule or the step wrong would show.
    const settings = { steps: 12, warmup: 2, lr: 0.02, lrFloor: 0.001, logEvery: 1, checkpointEvery: 0 };
    const straight = await train(options(`${dir}/straight`, { settings }));

    // Aborted while step 3 is logged, the run finishes the steps already in flight and saves there.
    const stop = new AbortController();
    const first = await train(options(`${dir}/split`, {
      settings,
      signal: stop.signal,
      onLog: (r) => r.step === 3 && stop.abort(),
    }));
    const at = first.step;
    assert.equal(first.interrupted, true);
    assert.ok(at >= 3 && at < 3 + first.settings.inFlight && at < 12, `stopped at ${at}`);
    assert.deepEqual(first.records.map((r) => r.step), Array.from({ length: at }, (_, i) => i + 1));
    assert.equal((await loadCheckpoint(`${dir}/split`)).run.step, at);

    const notes: string[] = [];
    const rest = await train(options(`${dir}/split`, { resume: true, onNote: (n) => notes.push(n) }));
    assert.equal(rest.startStep, at);
    assert.deepEqual(
      rest.settings,
      straight.settings,
      "the resumed run takes its settings from the checkpoint",
    );
    assert.ok(notes.some((n) => n.includes(`resuming at step ${at}`)), notes.join("\n"));
    assert.deepEqual(
      [...first.records, ...rest.records].map(trained),
      straight.records.map(trained),
      "losses, metrics, lr and gradient norms are bit-equal",
    );
    const [a, b] = [await loadCheckpoint(`${dir}/straight`), await loadCheckpoint(`${dir}/split`)];
    for (const [name, t] of a.model.tensors) {
      assert.deepEqual(b.model.tensors.get(name)!.data, t.data, `parameter ${name}`);
    }
    for (const [name, t] of a.optimizer!.tensors) {
      assert.deepEqual(b.optimizer!.tensors.get(name)!.data, t.data, `optimizer state ${name}`);
    }
    const steps = (await Deno.readTextFile(`${dir}/split/${RUN_FILES.log}`)).trim().split("\n")
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(
      steps,
      Array.from({ length: 12 }, (_, i) => i + 1),
      "the resumed log continues the first",
    );
  });
});

Deno.test("a resume with other config, dims or parameters is refused, naming each difference", async () => {
  await withDir(async (dir) => {
    const out = `${dir}/run`;
    await train(options(out, { settings: { steps: 2 } }));
    const before = await Deno.readFile(`${out}/checkpoint/model.safetensors`);
    const refusal = async (extra: Partial<TrainOptions>) => {
      try {
        await train(options(out, { resume: true, settings: { steps: 4 }, ...extra }));
      } catch (e) {
        assert.ok(e instanceof TrainError, String(e));
        return e.message;
      }
      assert.fail("the resume was not refused");
    };
    const noise = await refusal({ config: { noise: 0.1 } });
    assert.match(noise, /config noise is 0\.1 here but 0\.05 in .*run\.json/);
    const batch = await refusal({ dims: { batch: 4 } });
    assert.match(batch, /dim batch is 4 here but 8 .*--batch 8/);
    const hidden = await refusal({ config: { hidden: 8 } });
    assert.match(hidden, /l1\.w is F32 \[4, 16\] in the file, F32 \[4, 8\] in the spec/);
    assert.match(hidden, /config hidden is 8 here but 16/);
    assert.deepEqual(await Deno.readFile(`${out}/checkpoint/model.safetensors`), before);
    assert.equal((await loadCheckpoint(out)).run.step, 2, "nothing trained");
  });
});

Deno.test("a non-finite loss stops the run without saving it", async () => {
  await withDir(async (dir) => {
    // From step 2 on, the targets are finite but so large that their square overflows f32 (a NaN in
    // a batch is caught before the step: tests/faults_test.ts).
    const broken: AnyModel = {
      ...tiny,
      data: (c, dims) => {
        const good = tiny.data!(c as never, dims);
        const batch = (step: number, seed: number) => {
          const { x, y } = good.batch(step, seed);
          return { x: x!, y: step < 2 ? y! : Array.from(y!, () => 1e30) };
        };
        return { ...good, batch };
      },
    };
    const out = `${dir}/run`;
    await assert.rejects(
      train({ model: broken, specPath: SPEC_PATH, out, settings: { steps: 5, checkpointEvery: 2 } }),
      (e: Error) => e instanceof TrainError && /loss is Infinity at step 3/.test(e.message),
    );
    assert.equal((await loadCheckpoint(out)).run.step, 2, "the last good checkpoint stays");
  });
});

Deno.test("sample hooks: called every N steps and at the end, found by spec kind", async (t) => {
  await t.step("a registered hook gets the executor between steps", async () => {
    await withDir(async (dir) => {
      const hooked: AnyModel = { ...tiny, name: "tiny_hooked" };
      const calls: { step: number; dir: string; forwardLoss: number }[] = [];
      registerSampleHook("tiny_hooked", async (ctx: SampleContext) => {
        assert.equal(ctx.model, hooked);
        const batch = hooked.data!(ctx.config as never, ctx.plan.dims).batch(0, 0);
        const out = await ctx.executor.run("forward", batch);
        calls.push({ step: ctx.step, dir: ctx.dir, forwardLoss: out.loss![0]! });
      });
      await train({
        model: hooked,
        specPath: SPEC_PATH,
        out: `${dir}/run`,
        settings: { steps: 5, sampleEvery: 2 },
      });
      assert.deepEqual(calls.map((c) => c.step), [2, 4, 5]);
      assert.ok(calls.every((c) => c.dir === `${dir}/run` && Number.isFinite(c.forwardLoss)));
      assert.ok(calls[2]!.forwardLoss < calls[0]!.forwardLoss, "the hook sees the parameters being trained");
    });
  });
  await t.step("without a hook the setting is ignored with a note", async () => {
    await withDir(async (dir) => {
      const notes: string[] = [];
      const result = await train(options(`${dir}/run`, {
        settings: { steps: 2, sampleEvery: 1 },
        onNote: (n) => notes.push(n),
      }));
      assert.equal(result.step, 2);
      assert.ok(notes.some((n) => n.includes(`no sample hook is registered for spec "tiny_regression"`)));
    });
  });
});

Deno.test("settings: defaults < spec < checkpoint < given; bad values are named", () => {
  const spec = { steps: 40, lr: 1e-2, warmup: 2 };
  const s = resolveSettings(spec, { steps: 60 }, { warmup: 5, seed: 3 });
  assert.deepEqual([s.steps, s.lr, s.warmup, s.seed, s.lrFloor], [60, 1e-2, 5, 3, 1e-3]);
  assert.equal(resolveSettings(undefined, undefined, {}).checkpointEvery, 500);
  assert.equal(resolveSettings(spec, undefined, { lrFloor: 0 }).lrFloor, 0);
  assert.throws(
    () => resolveSettings(spec, undefined, { steps: 2.5 }),
    /steps = 2\.5: expected an integer >= 1/,
  );
  assert.throws(
    () => resolveSettings(spec, undefined, { beta2: 1 }),
    /beta2 = 1: expected a finite number >= 0 and < 1/,
  );
  assert.throws(
    () => resolveSettings(spec, undefined, { lr: 1e-3, lrFloor: 1e-2 }),
    /lrFloor = 0\.01 is above lr = 0\.001/,
  );
});

Deno.test("the log clock: every N steps, or 10 steps / 2 s; always the first and forced steps", () => {
  const every3 = new LogClock(3);
  every3.start(0, 0);
  const logged = [1, 2, 3, 4, 5, 6, 7].filter((s) => every3.due(s, s, s === 7) && (every3.mark(s, s), true));
  assert.deepEqual(logged, [1, 3, 6, 7]);
  const auto = new LogClock(0);
  auto.start(0, 0);
  assert.ok(auto.due(1, 5, false), "first step");
  assert.equal(auto.mark(1, 5), 5);
  assert.ok(!auto.due(10, 100, false) && auto.due(11, 100, false), "10 steps after the last log");
  assert.ok(auto.due(2, 2005, false), "2 seconds after the last log");
  assert.equal(auto.mark(11, 105), 10, "ms per step since the last log");
});

Deno.test("config overrides: dotted keys reach nested groups; a resume keeps the checkpoint's values", () => {
  const nested = (config: unknown): AnyModel => ({ ...tiny, name: "nested", config });
  const schema = z.object({
    dim: z.number().int().positive().default(8),
    image: z.object({ size: z.number().int().min(4).default(32), channels: z.number().int().default(1) })
      .strict().default({ size: 32, channels: 1 }),
  }).strict();
  const plain = { dim: 8, image: { size: 32, channels: 1 } };
  for (const [label, model] of [["zod schema", nested(schema)], ["plain defaults", nested(plain)]] as const) {
    assert.deepEqual(
      resolveRunConfig(model, { "image.size": 16 }, undefined),
      { dim: 8, image: { size: 16, channels: 1 } },
      label,
    );
    assert.deepEqual(
      resolveRunConfig(model, { dim: 4 }, { dim: 8, image: { size: 16, channels: 3 } }),
      { dim: 4, image: { size: 16, channels: 3 } },
      `${label}: the saved config under the given override`,
    );
    assert.throws(
      () => resolveRunConfig(model, { "image.sise": 16 }, undefined),
      /unknown config key "image\.sise" \(did you mean "image\.size"\?\); known keys, nearest first: image\.size, /,
      label,
    );
  }
  assert.throws(() => resolveRunConfig(nested(schema), { "image.size": 2 }, undefined), /image\.size/);
});

Deno.test("--resume alone continues with the checkpoint's config, dims and settings", async () => {
  await withDir(async (dir) => {
    const out = `${dir}/run`;
    await train(
      options(out, { config: { hidden: 8 }, dims: { batch: 4 }, settings: { steps: 2, lr: 0.005 } }),
    );
    const rest = await train(options(out, { resume: true, settings: { steps: 4 } }));
    assert.deepEqual([rest.startStep, rest.step], [2, 4]);
    assert.deepEqual(rest.config, { dim: 4, hidden: 8, noise: 0.05 });
    assert.deepEqual(rest.dims, { batch: 4 });
    assert.equal(rest.settings.lr, 0.005);
    const again = await train(options(out, { resume: true }));
    assert.deepEqual([again.step, again.records.length], [4, 0], "at its last step: nothing to train");
  });
});

Deno.test("--init-from: a new run from another's parameters, its config under the given changes", async (t) => {
  await withDir(async (dir) => {
    const source = `${dir}/source`;
    await train(options(source, { config: { hidden: 8 }, settings: { steps: 3 } }));
    const trainedParams = await loadCheckpoint(source);
    await t.step(
      "lr 0: the new run's parameters are the source's; step, optimizer and log start afresh",
      async () => {
        const out = `${dir}/tuned`;
        const notes: string[] = [];
        const r = await train(
          options(out, {
            initFrom: source,
            config: { noise: 0 },
            settings: { steps: 2, lr: 0, warmup: 0 },
            onNote: (n) => notes.push(n),
          }),
        );
        assert.deepEqual([r.startStep, r.step], [0, 2]);
        assert.deepEqual(r.config, { dim: 4, hidden: 8, noise: 0 }, "hidden from the source, noise as given");
        assert.ok(
          notes.some((n) => /starting from the parameters of .*source.*\(step 3\)/.test(n)),
          notes.join("\n"),
        );
        const tuned = await loadCheckpoint(out);
        for (const [name, tensor] of trainedParams.model.tensors) {
          assert.deepEqual(tuned.model.tensors.get(name)!.data, tensor.data, `${name} unchanged at lr 0`);
        }
        assert.equal(tuned.run.step, 2);
        assert.deepEqual(tuned.run.initFrom, {
          path: trainedParams.path,
          step: 3,
          specHash: trainedParams.run.spec.hash,
        });
        const lines = (await Deno.readTextFile(`${out}/${RUN_FILES.log}`)).trim().split("\n");
        assert.equal(JSON.parse(lines[0]!).step, 1, "the log begins at step 1");
        const resumed = await train(options(out, { resume: true, settings: { steps: 3 } }));
        assert.equal(resumed.step, 3);
        assert.deepEqual((await loadCheckpoint(out)).run.initFrom?.step, 3, "a resume keeps where it began");
      },
    );
    await t.step(
      "the same start with lr > 0 trains from the source's loss, not from a fresh init",
      async () => {
        const fresh = await train(options(`${dir}/fresh`, { config: { hidden: 8 }, settings: { steps: 1 } }));
        const tuned = await train(options(`${dir}/tuned2`, { initFrom: source, settings: { steps: 1 } }));
        const sourceLoss = trainedParams.run.metrics.loss!;
        assert.ok(
          Math.abs(tuned.records[0]!.loss - sourceLoss) < Math.abs(fresh.records[0]!.loss - sourceLoss),
          `tuned ${tuned.records[0]!.loss}, fresh ${fresh.records[0]!.loss}, source ${sourceLoss}`,
        );
      },
    );
    await t.step("refused: parameters that do not fit, --resume with it, a missing source", async () => {
      const refused = async (out: string, extra: Partial<TrainOptions>, pattern: RegExp) => {
        await assert.rejects(() => train(options(out, extra)), (e: Error) => {
          assert.match(e.message, pattern);
          return true;
        });
      };
      await refused(
        `${dir}/wide`,
        { initFrom: source, config: { hidden: 16 } },
        /cannot start from .*source.*l1\.w is F32 \[4, 8\] in the file, F32 \[4, 16\] in the spec/s,
      );
      await refused(`${dir}/source`, { initFrom: source, resume: true }, /give one of them/);
      await refused(`${dir}/nowhere`, { initFrom: `${dir}/missing` }, /missing/);
      for (const out of ["wide", "nowhere"]) {
        assert.ok(!(await exists(`${dir}/${out}`)), `${out}: nothing written`);
      }
    });
  });
});
