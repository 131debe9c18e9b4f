import assert from "node:assert/strict";
import type { ParamLayout } from "../compiler/plan.ts";
import type { Executor } from "../runtime/executor.ts";
import {
  captureCheckpoint,
  type CheckpointParts,
  loadCheckpoint,
  requireOptimizer,
  restoreCheckpoint,
  SAVE_STEPS,
  saveCheckpoint,
  saveCheckpointSteps,
  specHash,
  type TrainingState,
} from "../runtime/checkpoint.ts";
import { CheckpointError } from "../runtime/file_errors.ts";
import { decodeSafetensors } from "../runtime/safetensors.ts";

// The Executor must keep fitting what checkpoints read and write.
const _executorFits = (e: Executor): TrainingState => e;

const param = (path: string, shape: number[], offset: number): ParamLayout => ({
  path,
  shape,
  dtype: "f32",
  offset,
  init: { kind: "normal", std: 0.02 },
  decay: true,
  frozen: false,
});
const LAYOUT = [param("emb.w", [3, 2], 0), param("blocks.0.mlp.w", [2, 2], 6), param("norm.g", [2], 10)];

/** Parts whose every value depends on `step`, so checkpoints of different steps differ everywhere. */
function partsAt(step: number, layout = LAYOUT): CheckpointParts {
  const values = (p: ParamLayout, k: number) =>
    Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, (_, i) => step * 100 + k * 10 + i);
  return {
    layout,
    params: new Map(layout.map((p) => [p.path, values(p, 0)])),
    optimizer: new Map(layout.map((p) => [p.path, { m: values(p, 1), v: values(p, 2) }])),
    run: {
      spec: { path: "examples/t1.ts", name: "t1", hash: "abc" },
      config: { dim: 128, layers: [1, 2], name: "x", dropout: null },
      dims: { B: 32, T: 91 },
      step,
      data: { epoch: 1, index: step * 32 },
      rng: { seed: 7 },
      metrics: { loss: 1 / (step + 1), gradNorm: null },
    },
  };
}

async function withRunDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ckpt_test_" });
  try {
    await f(`${dir}/run`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function assertLoadsStep(dir: string, step: number): Promise<void> {
  const ck = await loadCheckpoint(dir, { params: LAYOUT });
  assert.equal(ck.run.step, step);
  const want = partsAt(step);
  for (const p of LAYOUT) {
    assert.deepEqual([...ck.model.tensors.get(p.path)!.data], Array.from(want.params.get(p.path)!), p.path);
    assert.deepEqual(
      [...ck.optimizer!.tensors.get(`v.${p.path}`)!.data],
      Array.from(want.optimizer.get(p.path)!.v),
    );
  }
}

async function rejects(p: Promise<unknown>, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

Deno.test("checkpoint save and load round trip", async (t) => {
  await withRunDir(async (dir) => {
    const saved = await saveCheckpoint(dir, partsAt(3));
    await t.step("everything comes back", async () => {
      await assertLoadsStep(dir, 3);
      const ck = await loadCheckpoint(dir);
      assert.equal(ck.path, saved);
      const { version, created, ...rest } = ck.run;
      assert.equal(version, 1);
      assert.ok(Math.abs(Date.parse(created) - Date.now()) < 60_000, created);
      assert.deepEqual(rest, partsAt(3).run);
      assert.deepEqual(ck.model.tensors.get("emb.w")!.shape, [3, 2]);
    });
    await t.step("the checkpoint folder itself loads too", async () => {
      assert.equal((await loadCheckpoint(saved)).run.step, 3);
    });
    await t.step("saving again replaces it and leaves no temp folders", async () => {
      await saveCheckpoint(dir, partsAt(4));
      await assertLoadsStep(dir, 4);
      const names = [];
      for await (const e of Deno.readDir(dir)) names.push(e.name);
      assert.deepEqual(names, ["checkpoint"]);
    });
    await t.step("each file is a standalone safetensors file", async () => {
      const model = decodeSafetensors(await Deno.readFile(`${saved}/model.safetensors`), "model");
      assert.deepEqual([...model.tensors.keys()].sort(), LAYOUT.map((p) => p.path).sort());
      const opt = decodeSafetensors(await Deno.readFile(`${saved}/optimizer.safetensors`), "opt");
      assert.equal(opt.tensors.size, 2 * LAYOUT.length);
      assert.equal(opt.metadata.step, "4");
    });
  });
});

Deno.test("a save killed after any step leaves a loadable checkpoint", async (t) => {
  const commit = SAVE_STEPS.indexOf("renamed checkpoint.new to checkpoint");
  for (const [i, crashAfter] of SAVE_STEPS.entries()) {
    await t.step(`crash after "${crashAfter}"`, async () => {
      await withRunDir(async (dir) => {
        await saveCheckpoint(dir, partsAt(1));
        for await (const step of saveCheckpointSteps(dir, partsAt(2))) if (step === crashAfter) break;
        // Before the commit rename the previous checkpoint is the one that loads; after it, the new.
        await assertLoadsStep(dir, i < commit ? 1 : 2);
        // The next save cleans up whatever the crash left and succeeds.
        await saveCheckpoint(dir, partsAt(5));
        await assertLoadsStep(dir, 5);
        const names = [];
        for await (const e of Deno.readDir(dir)) names.push(e.name);
        assert.deepEqual(names, ["checkpoint"]);
      });
    });
  }
  await t.step("a first save killed between the renames still loads the new checkpoint", async () => {
    await withRunDir(async (dir) => {
      for await (const step of saveCheckpointSteps(dir, partsAt(9))) {
        if (step === "moved previous to checkpoint.old") break;
      }
      await assertLoadsStep(dir, 9);
    });
  });
  await t.step("a first save killed before the rename leaves no checkpoint", async () => {
    await withRunDir(async (dir) => {
      for await (const step of saveCheckpointSteps(dir, partsAt(9))) if (step === "wrote run.json") break;
      await rejects(loadCheckpoint(dir), /^no checkpoint in .*run \(expected .*run\/checkpoint\/ with model/);
    });
  });
});

Deno.test("loadCheckpoint explains what is wrong", async (t) => {
  await withRunDir(async (dir) => {
    await t.step("missing directory", async () => {
      await rejects(loadCheckpoint(dir), `run directory ${dir} does not exist`);
    });
    await Deno.mkdir(dir);
    await t.step("empty directory", async () => {
      await rejects(
        loadCheckpoint(dir),
        `no checkpoint in ${dir} (expected ${dir}/checkpoint/ with model.safetensors, optimizer.safetensors, run.json)`,
      );
    });
    const ck = await saveCheckpoint(dir, partsAt(2));
    await t.step("truncated model.safetensors", async () => {
      const bytes = await Deno.readFile(`${ck}/model.safetensors`);
      await Deno.writeFile(`${ck}/model.safetensors`, bytes.subarray(0, bytes.length - 3));
      await rejects(
        loadCheckpoint(dir),
        new RegExp(`^${ck}/model.safetensors: tensor "[^"]+": data_offsets \\[\\d+, \\d+\\] run past the`),
      );
      await Deno.writeFile(`${ck}/model.safetensors`, bytes.subarray(0, 5));
      await rejects(
        loadCheckpoint(dir),
        `${ck}/model.safetensors: file is 5 bytes; a safetensors file starts with an 8-byte header length`,
      );
      await Deno.writeFile(`${ck}/model.safetensors`, bytes);
    });
    await t.step("run.json missing, malformed, or of a newer version", async () => {
      const json = await Deno.readTextFile(`${ck}/run.json`);
      await Deno.remove(`${ck}/run.json`);
      await rejects(loadCheckpoint(dir), `${ck}/run.json is missing`);
      await Deno.writeTextFile(`${ck}/run.json`, json.slice(0, 20));
      await rejects(loadCheckpoint(dir), new RegExp(`^${ck}/run.json is not valid JSON \\(`));
      const run = JSON.parse(json);
      await Deno.writeTextFile(`${ck}/run.json`, JSON.stringify({ ...run, step: -1, spec: { name: 3 } }));
      await rejects(
        loadCheckpoint(dir),
        new RegExp(`^${ck}/run.json is malformed: "spec.path": .*; "spec.name" = 3: .*; .*"step" = -1: `),
      );
      await Deno.writeTextFile(`${ck}/run.json`, JSON.stringify({ ...run, version: 2 }));
      await rejects(
        loadCheckpoint(dir),
        `${ck}/run.json has version 2, written by a newer build; this build reads version 1`,
      );
      await Deno.writeTextFile(`${ck}/run.json`, json);
    });
    await t.step("optimizer state that does not belong to the model", async () => {
      const other = partsAt(2, [param("emb.w", [3, 2], 0)]);
      const bytes = await Deno.readFile(`${ck}/optimizer.safetensors`);
      const otherDir = `${dir}-other`;
      await Deno.mkdir(otherDir, { recursive: true });
      await Deno.copyFile(
        `${await saveCheckpoint(otherDir, other)}/optimizer.safetensors`,
        `${ck}/optimizer.safetensors`,
      );
      await rejects(
        loadCheckpoint(dir),
        new RegExp(
          `^${ck}/optimizer.safetensors does not match ${ck}/model.safetensors .*\n  missing \\(4\\): `,
        ),
      );
      await Deno.writeFile(`${ck}/optimizer.safetensors`, bytes);
      await Deno.remove(otherDir, { recursive: true });
    });
    await t.step(
      "a weights-only copy loads without optimizer state; a resume from it is refused",
      async () => {
        const bytes = await Deno.readFile(`${ck}/optimizer.safetensors`);
        await Deno.remove(`${ck}/optimizer.safetensors`);
        const loaded = await loadCheckpoint(dir, { params: LAYOUT });
        assert.equal(loaded.optimizer, undefined);
        assert.equal(loaded.run.step, 2);
        assert.throws(
          () => requireOptimizer(loaded),
          (e) =>
            e instanceof CheckpointError &&
            e.message.startsWith(
              `${ck}/optimizer.safetensors is missing: this is a weights-only checkpoint`,
            ) &&
            e.message.endsWith(`--init-from ${ck}`),
        );
        await Deno.writeFile(`${ck}/optimizer.safetensors`, bytes);
      },
    );
    await t.step("a checkpoint of another spec", async () => {
      const layout = [param("emb.w", [3, 4], 0), param("head.w", [4, 3], 12)];
      await rejects(
        loadCheckpoint(dir, { params: layout }),
        [
          `${ck}/model.safetensors does not match the spec (a checkpoint of another spec or config?):`,
          "  missing (1): head.w",
          "  not in the spec (2): blocks.0.mlp.w, norm.g",
          "  different shape or dtype (1): emb.w is F32 [3, 2] in the file, F32 [3, 4] in the spec",
        ].join("\n"),
      );
    });
    await t.step("the intact checkpoint still loads after all that", () => assertLoadsStep(dir, 2));
  });
});

Deno.test("saveCheckpoint refuses incomplete parts before touching the disk", async () => {
  await withRunDir(async (dir) => {
    const good = partsAt(1);
    await rejects(
      saveCheckpoint(dir, { ...good, run: { ...good.run, step: -1 } }),
      /^saveCheckpoint: run state is malformed: "step": Too small/,
    );
    const params = new Map(good.params);
    params.delete("norm.g");
    await rejects(
      saveCheckpoint(dir, { ...good, params }),
      `saveCheckpoint: no value for parameter "norm.g"`,
    );
    await rejects(
      saveCheckpoint(dir, { ...good, optimizer: new Map() }),
      `saveCheckpoint: no optimizer m for parameter "emb.w"`,
    );
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
  });
});

/** An in-memory stand-in for the Executor. */
class FakeState implements TrainingState {
  readonly plan = { params: LAYOUT };
  step = 0;
  params = new Map<string, Float32Array>();
  moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  getAllParams() {
    return Promise.resolve(new Map(this.params));
  }
  setAllParams(values: ReadonlyMap<string, ArrayLike<number>>) {
    for (const [k, v] of values) this.params.set(k, Float32Array.from(v));
    return Promise.resolve();
  }
  getOptimizerState(path: string) {
    return Promise.resolve(this.moments.get(path)!);
  }
  setOptimizerState(path: string, s: { m: ArrayLike<number>; v: ArrayLike<number> }) {
    this.moments.set(path, { m: Float32Array.from(s.m), v: Float32Array.from(s.v) });
    return Promise.resolve();
  }
}

Deno.test("captureCheckpoint and restoreCheckpoint move the whole training state", async () => {
  await withRunDir(async (dir) => {
    const parts = partsAt(6);
    const source = new FakeState();
    await source.setAllParams(parts.params);
    for (const [k, s] of parts.optimizer) await source.setOptimizerState(k, s);
    source.step = 6;
    const { step: _, ...run } = parts.run;
    await saveCheckpoint(dir, await captureCheckpoint(source, run));
    const target = new FakeState();
    await restoreCheckpoint(target, await loadCheckpoint(dir));
    assert.equal(target.step, 6);
    assert.deepEqual(target.params, source.params);
    assert.deepEqual(target.moments, source.moments);
  });
});

Deno.test("specHash is the SHA-256 of the source text", async () => {
  // The SHA-256 test vector of "abc" (FIPS 180-2).
  assert.equal(await specHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.notEqual(await specHash("dim = 128"), await specHash("dim = 256"));
});
