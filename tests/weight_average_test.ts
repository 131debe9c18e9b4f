/**
 * The moving average of the parameters (`--ema`): its arithmetic against a step-by-step average, the
 * optional ema.safetensors in a checkpoint (saved, loaded, checked against model.safetensors), and
 * the trainer keeping it: present only when asked, different from the raw weights, and the same
 * after a stop at a checkpoint and a resume as in a run that never stopped.
 */
import assert from "node:assert/strict";
import { tinyOptions, withTempDir } from "./fixtures/tiny_runs.ts";
import { CheckpointError } from "../runtime/file_errors.ts";
import { EMA_FILE, loadCheckpoint, saveCheckpoint } from "../runtime/checkpoint.ts";
import { encodeSafetensors } from "../runtime/safetensors.ts";
import { train } from "../runtime/train/mod.ts";
import { resolveSettings } from "../runtime/train/settings.ts";
import { decayAt, WeightAverage } from "../runtime/train/weight_average.ts";

const withDir = (f: (dir: string) => Promise<void>) => withTempDir("weight_average_test_", f);
const options = tinyOptions;

Deno.test("folding k steps at once equals averaging step by step, warmup included", () => {
  const history = Array.from({ length: 12 }, (_, s) => new Map([["w", Float32Array.of(s, -2 * s, 0.5)]]));
  const decay = 0.8;
  // The reference: one update per step with that step's decay.
  const reference = Float64Array.from(history[0]!.get("w")!);
  for (let s = 1; s < history.length; s++) {
    const d = decayAt(decay, s);
    const p = history[s]!.get("w")!;
    for (let i = 0; i < reference.length; i++) reference[i] = reference[i]! * d + p[i]! * (1 - d);
  }
  const folded = new WeightAverage(decay, history[0]!, 0);
  // Parameters are constant between updates, as if read every 3 steps, so give the 3rd of each run.
  const every3 = Array.from({ length: 12 }, (_, s) => history[Math.ceil(s / 3) * 3] ?? history[11]!);
  const byStep = new WeightAverage(decay, every3[0]!, 0);
  for (let s = 1; s < every3.length; s++) byStep.update(every3[s]!, s);
  for (const s of [3, 6, 9, 11]) folded.update(every3[s]!, s);
  assert.equal(folded.step, 11);
  const [a, b] = [folded.values.get("w")!, byStep.values.get("w")!];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5, `${a[i]} vs ${b[i]}`);
  // And the step-by-step reference, fed every step, is not what a 3-step reading gives (the test bites).
  assert.ok(Math.abs(reference[0]! - a[0]!) > 1e-3);

  assert.equal(decayAt(0.999, 1), 2 / 11, "early steps keep little of the start");
  assert.equal(decayAt(0.999, 100_000), 0.999);
});

Deno.test("the average refuses a bad decay, a step backwards and a missing parameter", () => {
  const values = new Map([["w", Float32Array.of(1, 2)]]);
  assert.throws(() => new WeightAverage(1, values, 0), /decay must be in \(0, 1\), got 1/);
  assert.throws(() => new WeightAverage(0.9, values, -1), /step must be a non-negative integer, got -1/);
  const avg = new WeightAverage(0.9, values, 5);
  assert.throws(() => avg.update(values, 4), /step 4 is before the average's step 5/);
  assert.throws(() => avg.update(new Map(), 6), /parameter "w" is missing/);
  assert.throws(() => avg.update(new Map([["w", Float32Array.of(1)]]), 6), /"w" has 1 values, expected 2/);
  const before = Float32Array.from(values.get("w")!);
  values.get("w")![0] = 99;
  assert.deepEqual(avg.values.get("w"), before, "the average copies what it starts from");
});

Deno.test("settings: ema and emaEvery are checked", () => {
  assert.equal(resolveSettings(undefined, undefined, {}).ema, 0, "off unless asked");
  assert.equal(resolveSettings({ ema: 0.99 }, undefined, {}).ema, 0.99, "a spec may ask for it");
  assert.throws(
    () => resolveSettings(undefined, undefined, { ema: 1 }),
    /ema = 1: expected a finite number >= 0 and < 1/,
  );
  assert.throws(
    () => resolveSettings(undefined, undefined, { emaEvery: 0 }),
    /emaEvery = 0: expected an integer >= 1/,
  );
});

Deno.test("the trainer keeps ema.safetensors when asked, and a resume continues the same average", async () => {
  await withDir(async (dir) => {
    const settings = { steps: 8, lr: 0.02, logEvery: 4, checkpointEvery: 4, ema: 0.9, emaEvery: 2 };
    await train(options(`${dir}/straight`, { settings }));
    const straight = await loadCheckpoint(`${dir}/straight`);
    assert.ok(straight.ema, "ema.safetensors is in the checkpoint");
    const average = straight.ema;
    let differs = false;
    for (const [name, t] of straight.model.tensors) {
      const avg = average.tensors.get(name)!.data;
      assert.equal(avg.length, t.data.length);
      assert.ok([...avg].every((v) => Number.isFinite(Number(v))), `${name} average is finite`);
      differs ||= [...avg].some((v, i) => v !== t.data[i]);
    }
    assert.ok(differs, "the average is not the last step's weights");

    // Stop at the step-4 checkpoint, resume to 8: the same average, bit for bit.
    const stop = new AbortController();
    await train(
      options(`${dir}/split`, { settings, signal: stop.signal, onLog: (r) => r.step === 4 && stop.abort() }),
    );
    assert.equal((await loadCheckpoint(`${dir}/split`)).run.step, 4);
    await train(options(`${dir}/split`, { resume: true }));
    const split = await loadCheckpoint(`${dir}/split`);
    for (const [name, t] of average.tensors) {
      assert.deepEqual(split.ema!.tensors.get(name)!.data, t.data, `average of ${name}`);
    }

    // Without --ema nothing is kept; resuming such a run with an ema starts one, with a note.
    await train(options(`${dir}/plain`, { settings: { ...settings, steps: 2, ema: 0 } }));
    assert.equal((await loadCheckpoint(`${dir}/plain`)).ema, undefined);
    const notes: string[] = [];
    await train(
      options(`${dir}/plain`, {
        resume: true,
        settings: { steps: 4, ema: 0.9 },
        onNote: (n) => notes.push(n),
      }),
    );
    assert.ok(notes.some((n) => /starting a moving average .* at step 2/.test(n)), notes.join("\n"));
    assert.ok((await loadCheckpoint(`${dir}/plain`)).ema);
  });
});

Deno.test("an ema.safetensors that does not match model.safetensors is refused by name", async () => {
  await withDir(async (dir) => {
    await train(options(`${dir}/run`, { settings: { steps: 2, ema: 0.9 } }));
    const path = `${dir}/run/checkpoint/${EMA_FILE}`;
    await Deno.writeFile(
      path,
      encodeSafetensors(new Map([["l1.w", { dtype: "F32", shape: [1], data: Float32Array.of(0) }]]), {}),
    );
    await assert.rejects(
      loadCheckpoint(`${dir}/run`),
      (e: Error) =>
        e instanceof CheckpointError && e.message.includes(EMA_FILE) && /missing \(3\): /.test(e.message) &&
        /l1\.w is F32 \[1\] in the file/.test(e.message),
    );
    await Deno.writeTextFile(path, "not safetensors");
    await assert.rejects(
      loadCheckpoint(`${dir}/run`),
      (e: Error) => e instanceof CheckpointError && e.message.includes(EMA_FILE),
    );
  });
});

Deno.test("saveCheckpoint writes ema.safetensors only when given one", async () => {
  await withDir(async (dir) => {
    await train(options(`${dir}/run`, { settings: { steps: 1, ema: 0.5 } }));
    const loaded = await loadCheckpoint(`${dir}/run`);
    const values = (file: typeof loaded.model) =>
      new Map([...file.tensors].map(([k, t]) => [k, t.data as Float32Array]));
    const layout = [...loaded.model.tensors].map(([path, t], i) => ({
      path,
      shape: [...t.shape],
      dtype: "f32" as const,
      offset: i,
      init: { kind: "normal" as const, std: 0 },
      decay: true,
      frozen: false,
    }));
    const parts = {
      layout,
      params: values(loaded.model),
      optimizer: new Map(layout.map((p) => [p.path, {
        m: loaded.optimizer!.tensors.get(`m.${p.path}`)!.data as Float32Array,
        v: loaded.optimizer!.tensors.get(`v.${p.path}`)!.data as Float32Array,
      }])),
      run: loaded.run,
    };
    await saveCheckpoint(`${dir}/again`, parts);
    assert.equal((await loadCheckpoint(`${dir}/again`)).ema, undefined);
    await saveCheckpoint(`${dir}/again`, { ...parts, ema: values(loaded.ema!) });
    const back = await loadCheckpoint(`${dir}/again`);
    for (const [name, t] of loaded.ema!.tensors) assert.deepEqual(back.ema!.tensors.get(name)!.data, t.data);
  });
});
