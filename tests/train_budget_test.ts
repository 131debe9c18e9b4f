/**
 * The train budget (runtime/train/budget.ts): the loop sizes the run after its measured steps,
 * samples at the sizing step, trains the sized total with the schedule a run given that total
 * from the start has, and records it for a resume.
 */
import assert from "node:assert/strict";
import tiny from "./fixtures/tiny_regression.ts";
import { TINY_SPEC_PATH, tinyOptions, withTempDir } from "./fixtures/tiny_runs.ts";
import type { AnyModel } from "../spec/mod.ts";
import { type MeasuredPace, minutesBudget, RUN_FILES, stepsWithin, train } from "../runtime/train/mod.ts";

const withDir = (f: (dir: string) => Promise<void>) => withTempDir("train_budget_test_", f);

Deno.test("stepsWithin: the steps that fit before the deadline, after a reserve, at least one more", () => {
  const pace: MeasuredPace = { step: 11, msPerStep: 400, now: 60_000 };
  assert.equal(stepsWithin(pace, 660_000), 11 + 1500);
  assert.equal(stepsWithin(pace, 660_000, 120_000), 11 + 1200);
  assert.equal(stepsWithin(pace, 50_000), 12, "past the deadline: one more step, never fewer");
  assert.throws(() => stepsWithin({ ...pace, msPerStep: 0 }, 1), /msPerStep must be > 0, got 0/);
  assert.throws(() => minutesBudget(0, 0), /minutes must be > 0, got 0/);
});

Deno.test("a budget sizes the run at step 1 + measureSteps; the sized run trains like a straight one", async () => {
  await withDir(async (dir) => {
    const hooked: AnyModel = { ...tiny, name: "tiny_budget" };
    const hookSteps: number[] = [];
    const paces: MeasuredPace[] = [];
    const notes: string[] = [];
    const sized = await train({
      model: hooked,
      specPath: TINY_SPEC_PATH,
      out: `${dir}/sized`,
      // warmup 10 covers the 4 measured steps, so the sized total changes no rate already used.
      settings: { steps: 1000, warmup: 10, logEvery: 1 },
      sampleHook: (ctx) => {
        hookSteps.push(ctx.step);
        return Promise.resolve();
      },
      budget: {
        measureSteps: 3,
        size: (pace) => {
          paces.push(pace);
          return { steps: 20, sampleEvery: 8 };
        },
      },
      onNote: (n) => notes.push(n),
    });
    assert.equal(paces.length, 1);
    assert.equal(paces[0]!.step, 4, "sized after step 1 and 3 measured steps");
    assert.ok(paces[0]!.msPerStep > 0 && Number.isFinite(paces[0]!.msPerStep), `pace ${paces[0]!.msPerStep}`);
    assert.deepEqual(hookSteps, [4, 8, 16, 20], "the sizing step, every sized period, and the last");
    assert.equal(sized.step, 20);
    assert.equal(sized.settings.steps, 20);
    assert.equal(sized.settings.sampleEvery, 8);
    assert.ok(
      sized.records.every((r) => r.step <= 4 || r.steps === 20),
      "logs after sizing name the sized total",
    );
    assert.ok(
      notes.some((n) => /ms\/step over 3 steps: training 20 steps, sampling every 8/.test(n)),
      notes.join("\n"),
    );
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/sized/${RUN_FILES.settings}`));
    assert.equal(saved.steps, 20, "training.json records the sized total, so a resume keeps it");

    const straight = await train(
      tinyOptions(`${dir}/straight`, { settings: { steps: 20, warmup: 10, logEvery: 1 } }),
    );
    assert.deepEqual(sized.records.map((r) => r.lr), straight.records.map((r) => r.lr));
    assert.deepEqual(sized.records.map((r) => r.loss), straight.records.map((r) => r.loss));
  });
});

Deno.test("a budget never trains past settings.steps, and a warmup shorter than the measured steps is noted", async () => {
  await withDir(async (dir) => {
    const notes: string[] = [];
    const result = await train(tinyOptions(`${dir}/run`, {
      settings: { steps: 12, warmup: 0 },
      budget: { measureSteps: 2, size: () => ({ steps: 10_000 }) },
      onNote: (n) => notes.push(n),
    }));
    assert.equal(result.step, 12);
    assert.equal(result.settings.steps, 12);
    assert.ok(
      notes.some((n) => n.includes("warmup (0) ended before the budget sized the run at step 3")),
      notes.join("\n"),
    );
  });
});
