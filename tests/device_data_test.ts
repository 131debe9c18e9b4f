/**
 * Device-resident data: the gather kernel makes the images the host makes (digitImage) from the
 * uploaded digit table, shifts and absent images included; a run on device batches trains like one
 * on host batches, and with steps in flight it repeats itself bit for bit.
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { gatherInputs, rowsInputName, tableBufferName } from "../compiler/gather_inputs.ts";
import { node } from "../compiler/ir/mod.ts";
import { Executor } from "../runtime/executor.ts";
import { loadMnist } from "../data/mnist.ts";
import { digitGather, digitImage } from "../data/mnist_captions.ts";
import { type LogRecord, train } from "../runtime/train/mod.ts";
import demo from "../examples/transfusion_demo.ts";
import { SMALL_DEMO } from "./fixtures/small_demo.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";

const DEMO_PATH = new URL("../examples/transfusion_demo.ts", import.meta.url).pathname;

Deno.test("the gather kernel makes digitImage's images from the device table", async (t) => {
  const { train: digits } = loadMnist();
  // (size, channels): the demo's 16 (28 -> 14, centered), T1's 32 (28 padded), a 3-channel 9 (factor 4).
  for (const [size, channels] of [[16, 1], [32, 1], [9, 3]] as const) {
    await t.step(`${channels} x ${size} x ${size}`, async () => {
      const image = { size, channels };
      const R = 6;
      const images = node("input", [], { name: "images", shape: [R, 1, channels, size, size], dtype: "f32" });
      const plan = compileGraph({ twice: node("add", [images, images], null) });
      const gathered = gatherInputs(
        plan,
        "forward",
        [digitGather(image)],
        { digits: digits.images },
        1 << 27,
      );
      assert.deepEqual(gathered.entries.forward!.inputs.map((s) => s.name), [rowsInputName("images")]);
      // Rows: plain, shifted both ways, absent (-1), the last digit, shifted off the frame.
      const rows: [number, number, number][] = [
        [0, 0, 0],
        [17, 2, -2],
        [-1, 0, 0],
        [digits.count - 1, -1, 1],
        [
          5,
          0,
          0,
        ],
        [9, 27, 0],
      ];
      const ex = await Executor.create(gathered, { seed: 0 });
      try {
        await ex.setData(tableBufferName("digits"), digits.images as Float32Array<ArrayBuffer>);
        const out = await ex.run("forward", { [rowsInputName("images")]: rows.flat() });
        const got = out.twice!;
        const pixels = channels * size * size;
        let worst = 0;
        rows.forEach(([i, dx, dy], r) => {
          const want = i < 0 ? new Float32Array(pixels) : digitImage(digits, i, image, [dx, dy]);
          for (let p = 0; p < pixels; p++) {
            worst = Math.max(worst, Math.abs(got[r * pixels + p]! / 2 - want[p]!));
          }
        });
        assert.ok(worst <= 1e-6, `largest difference ${worst}`);
      } finally {
        ex.destroy();
      }
    });
  }
  await t.step("a gather that does not fit the entry is refused by name", () => {
    const images = node("input", [], { name: "images", shape: [2, 1, 1, 16, 16], dtype: "f32" });
    const plan = compileGraph({ y: node("add", [images, images], null) });
    const table = { digits: digits.images };
    assert.throws(
      () =>
        gatherInputs(
          plan,
          "forward",
          [{ ...digitGather({ size: 16, channels: 1 }), input: "x" }],
          table,
          1 << 27,
        ),
      /input "x" of entry "forward" does not exist; inputs: images/,
    );
    assert.throws(
      () => gatherInputs(plan, "forward", [digitGather({ size: 32, channels: 1 })], table, 1 << 27),
      /is f32\[2,1,1,16,16\]; the gather makes f32 \[\.\.\., 1,32,32\]/,
    );
    assert.throws(
      () =>
        gatherInputs(plan, "forward", [digitGather({ size: 16, channels: 1 })], {
          digits: new Float32Array(5),
        }, 1 << 27),
      /table "digits" has 5 values, not rows of 784/,
    );
  });
});

const trained = (r: LogRecord) => ({ step: r.step, loss: r.loss, metrics: r.metrics, g: r.gradNorm });

Deno.test("training on device batches: like host batches, and bit for bit with steps in flight", async () => {
  await withTempDir("device_data_test_", async (dir) => {
    const base = {
      model: demo,
      specPath: DEMO_PATH,
      config: SMALL_DEMO,
      dims: { batch: 4 },
    };
    const settings = { steps: 4, logEvery: 1, checkpointEvery: 0, lr: 1e-3, warmup: 0 };
    const notes: string[] = [];
    const device = await train({
      ...base,
      out: `${dir}/device`,
      settings: { ...settings, inFlight: 4 },
      onNote: (n) => notes.push(n),
    });
    assert.ok(
      notes.some((n) => /batches are gathered on the device from 26\.6 MB/.test(n)),
      notes.join("\n"),
    );
    const deviceSync = await train({
      ...base,
      out: `${dir}/device1`,
      settings: { ...settings, inFlight: 1 },
    });
    assert.deepEqual(
      device.records.map(trained),
      deviceSync.records.map(trained),
      "in flight or not: same bits",
    );
    const host = await train({
      ...base,
      out: `${dir}/host`,
      hostData: true,
      settings: { ...settings, inFlight: 1 },
    });
    // The same rows; only the images' float rounding differs (f32 sums on the device, f64 on the host).
    device.records.forEach((r, i) => {
      const h = host.records[i]!;
      assert.equal(r.step, h.step);
      assert.ok(
        Math.abs(r.loss - h.loss) <= 1e-4 * Math.abs(h.loss),
        `step ${r.step}: ${r.loss} vs ${h.loss}`,
      );
    });
  });
});
