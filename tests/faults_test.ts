/**
 * The fault suite: what a hostile user or a bad machine does to a run, through the CLI as a person
 * meets it. Every case ends in one `error:` message naming the file and the problem, exit code 1,
 * no stack trace, and the run directory exactly as it was (or, where a save was cut short, its last
 * checkpoint intact). Cases: damaged checkpoint files (cut at several offsets, wrong shape or dtype,
 * missing or extra tensors, NaN weights, a run.json of another spec), a run directory that is a
 * file, a read-only directory, a full disk during a save (a small tmpfs where mount is allowed,
 * else an injected write error), kill -9 at random moments of a run with a checkpoint every step
 * (ten times: the directory always loads and --resume gives the uninterrupted losses bit for bit),
 * and training that diverges (--lr 10, a NaN in a batch). Set FAULT_TABLE=path to write the cases
 * as a markdown table (case, message, exit code, files compared before and after).
 */
import assert from "node:assert/strict";
import { assertRefusal, changedFiles, cli, type CliRun, copyDir, snapshot } from "./fixtures/cli_runs.ts";
import { DAMAGES } from "./fixtures/checkpoint_damage.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";
import { train } from "../runtime/train/mod.ts";
import tiny from "./fixtures/tiny_regression.ts";
import { isFileSystemError } from "../runtime/file_errors.ts";

const SPEC = "tests/fixtures/tiny_regression.ts";
/** A constant learning rate: a run cut at any step sees the schedule of a straight one. */
const CONSTANT_LR = ["--lr", "0.01", "--lr-floor", "0.01", "--warmup", "0"];

interface Row {
  readonly name: string;
  readonly message: string;
  readonly code: number;
  readonly files: string;
}
const TABLE: Row[] = [];

/** Records a case for the table; paths under `dir` are written DIR. */
function record(name: string, run: CliRun, dir: string, files: string): void {
  // The error and the lines under it (a mismatch lists its tensors there), joined with " / ".
  const from = run.stderr.indexOf("error: ");
  const message = (from < 0 ? run.stderr : run.stderr.slice(from)).trim().split("\n").map((l) => l.trim())
    .join(" / ").replaceAll(dir, "DIR");
  TABLE.push({ name, message, code: run.code, files });
}

/** Trains SPEC for `steps` into `out` (checkpoint every step), asserting success. */
async function trained(out: string, steps = 2, ...extra: string[]): Promise<void> {
  const run = await cli("train", [SPEC, "--out", out, "--steps", String(steps), ...CONSTANT_LR, ...extra]);
  assert.equal(run.code, 0, run.stderr);
}

Deno.test("a damaged checkpoint: --resume refuses it in one line naming the file; nothing is written", async (t) => {
  await withTempDir("faults_damage_", async (tmp) => {
    const base = `${tmp}/base`;
    await trained(base);
    const patterns: Record<string, RegExp> = {
      "model.safetensors cut inside the length prefix (4 bytes)":
        /model\.safetensors: file is 4 bytes; a safetensors file starts with an 8-byte header length/,
      "model.safetensors cut inside the JSON header":
        /model\.safetensors: header length \d+ runs past the end/,
      "model.safetensors cut right after the header (no data)":
        /model\.safetensors: tensor "l1\.b": data_offsets \[0, 64\] run past the 0-byte data section/,
      "model.safetensors cut inside the data": /model\.safetensors: tensor "l1\.w": .* run past the \d+-byte/,
      "model.safetensors missing its last byte": /model\.safetensors: tensor "l2\.w": .*truncated file\?/,
      "optimizer.safetensors cut inside the data": /optimizer\.safetensors: tensor "v\.l2\.w": .*truncated/,
      "model.safetensors empty": /model\.safetensors: file is 0 bytes/,
      "a tensor of the wrong shape (l1.w [16, 4] for [4, 16])":
        /does not match the spec[^]*l1\.w is F32 \[16, 4\] in the file, F32 \[4, 16\] in the spec/,
      "a tensor of the wrong dtype (l2.b I32 for F32)":
        /l2\.b is I32 \[1\] in the file, F32 \[1\] in the spec/,
      "a missing tensor (l2.b)": /does not match the spec[^]*missing \(1\): l2\.b/,
      "an extra tensor (l3.w)": /does not match the spec[^]*not in the spec \(1\): l3\.w/,
      "model and optimizer of different shapes":
        /optimizer\.safetensors does not match .*model\.safetensors[^]*m\.l1\.w is F32 \[4, 16\]/,
      "NaN weights (l1.w[5])":
        /model\.safetensors: 1 tensor\(s\) hold non-finite values: l1\.w \(NaN at index 5\)/,
      "an infinite optimizer moment (v.l2.w[0])":
        /optimizer\.safetensors: .*v\.l2\.w \(Infinity at index 0\)/,
      "run.json not JSON": /run\.json is not valid JSON/,
      "run.json missing": /run\.json is missing/,
      "run.json with a negative step":
        /run\.json is malformed: "step" = -3: Too small: expected number to be >=0/,
    };
    assert.deepEqual(Object.keys(patterns).sort(), Object.keys(DAMAGES).sort(), "a pattern per damage");
    for (const [name, damage] of Object.entries(DAMAGES)) {
      await t.step(name, async () => {
        const dir = `${tmp}/case`;
        await copyDir(base, dir);
        await damage(`${dir}/checkpoint`);
        const before = await snapshot(dir);
        const run = await cli("train", [SPEC, "--out", dir, "--resume", "--steps", "4"]);
        assertRefusal(run, patterns[name]!);
        assert.deepEqual(changedFiles(before, await snapshot(dir)), [], "nothing written");
        record(name, run, dir, "all (checkpoint/*, log.jsonl, training.json, loss.svg): unchanged");
        await Deno.remove(dir, { recursive: true });
      });
    }
    await t.step("run.json of another spec", async () => {
      const other = `${tmp}/other`;
      const deep = await cli("train", [
        "tests/fixtures/tiny_regression_deep.ts",
        "--out",
        other,
        "--steps",
        "1",
      ]);
      assert.equal(deep.code, 0, deep.stderr);
      const dir = `${tmp}/case`;
      await copyDir(base, dir);
      await Deno.copyFile(`${other}/checkpoint/run.json`, `${dir}/checkpoint/run.json`);
      const before = await snapshot(dir);
      const run = await cli("train", [SPEC, "--out", dir, "--resume", "--steps", "4"]);
      assertRefusal(run, /tiny_regression_deep/);
      assert.deepEqual(changedFiles(before, await snapshot(dir)), [], "nothing written");
      record("run.json of another spec", run, dir, "all: unchanged");
    });
  });
});

/** Mounts a tmpfs of `size` at `dir` (options such as "ro"); false where the machine refuses. */
async function mountTmpfs(dir: string, options: string): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  try {
    const out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", options, "tmpfs", dir],
      stderr: "piped",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}
async function unmount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: [dir] }).output();
}

/** Whether a tmpfs can be mounted here (root on Linux, no sandbox refusing it), asked once. */
const CAN_MOUNT = await (async () => {
  const dir = await Deno.makeTempDir({ prefix: "faults_probe_" });
  const ok = await mountTmpfs(dir, "size=64k");
  if (ok) await unmount(dir);
  await Deno.remove(dir);
  if (!ok) {
    console.warn(
      "faults_test: SKIPPING the tmpfs cases (mount is not permitted here); the full disk is asserted " +
        "with an injected write error instead",
    );
  }
  return ok;
})();

Deno.test("the run directory is a file: a new run and a resume are refused, the file untouched", async () => {
  await withTempDir("faults_file_", async (tmp) => {
    const file = `${tmp}/run`;
    await Deno.writeTextFile(file, "not a run\n");
    const fresh = await cli("train", [SPEC, "--out", file, "--steps", "1"]);
    assertRefusal(fresh, /--out .*run is a file, not a directory/);
    record("the run directory is a file (new run)", fresh, tmp, "the file: unchanged");
    const resume = await cli("train", [SPEC, "--out", file, "--resume", "--steps", "1"]);
    assertRefusal(resume, /run is not a directory \(expected a run directory\)/);
    record("the run directory is a file (--resume)", resume, tmp, "the file: unchanged");
    await Deno.mkdir(`${tmp}/dir`);
    await Deno.writeTextFile(`${tmp}/dir/checkpoint`, "not a folder\n");
    const folder = await cli("train", [SPEC, "--out", `${tmp}/dir`, "--resume", "--steps", "1"]);
    assertRefusal(folder, /dir\/checkpoint is a file; a checkpoint is a folder of model\.safetensors/);
    record("checkpoint/ is a file (--resume)", folder, tmp, "the file: unchanged");
    assert.equal(await Deno.readTextFile(file), "not a run\n");
    assert.equal(await Deno.readTextFile(`${tmp}/dir/checkpoint`), "not a folder\n");
  });
});

Deno.test({
  name: CAN_MOUNT
    ? "a read-only run directory: a new run and a resume fail in one line; the checkpoint stays"
    : "SKIPPED (mount not permitted here): a read-only run directory on a read-only tmpfs",
  ignore: !CAN_MOUNT,
  fn: async () => {
    await withTempDir("faults_ro_", async (tmp) => {
      const mnt = `${tmp}/mnt`;
      await Deno.mkdir(mnt);
      assert.ok(await mountTmpfs(mnt, "size=256k"));
      try {
        await trained(`${mnt}/run`);
        await new Deno.Command("mount", { args: ["-o", "remount,ro", mnt] }).output();
        const before = await snapshot(`${mnt}/run`);
        const resume = await cli("train", [SPEC, "--out", `${mnt}/run`, "--resume", "--steps", "4"]);
        assertRefusal(resume, /Read-only file system .*; the checkpoint of step 2 in .* stays/);
        assert.deepEqual(changedFiles(before, await snapshot(`${mnt}/run`)), []);
        record("a read-only run directory (--resume)", resume, tmp, "all: unchanged");
        const fresh = await cli("train", [SPEC, "--out", `${mnt}/new`, "--steps", "1"]);
        assertRefusal(
          fresh,
          /Read-only file system \(os error 30\): mkdir .*new.*; no checkpoint of this run/,
        );
        record("an unwritable output directory (new run)", fresh, tmp, "nothing created");
      } finally {
        await unmount(mnt);
      }
    });
  },
});

Deno.test({
  name: CAN_MOUNT
    ? "a full disk during a save (64 KiB tmpfs): one line, the previous checkpoint intact, --resume later works"
    : "SKIPPED (mount not permitted here): a full disk on a small tmpfs; see the injected write error test",
  ignore: !CAN_MOUNT,
  fn: async () => {
    await withTempDir("faults_full_", async (tmp) => {
      const mnt = `${tmp}/mnt`;
      await Deno.mkdir(mnt);
      assert.ok(await mountTmpfs(mnt, "size=64k"));
      try {
        const out = `${mnt}/run`;
        await trained(out, 2, "--checkpoint-every", "1");
        // Fill the disk, then free two pages: the log still fits, a whole checkpoint does not.
        const fillers: string[] = [];
        for (let i = 0;; i++) {
          try {
            await Deno.writeFile(`${mnt}/fill${i}`, new Uint8Array(4096));
            fillers.push(`${mnt}/fill${i}`);
          } catch {
            await Deno.remove(`${mnt}/fill${i}`).catch(() => {});
            break;
          }
        }
        for (const f of fillers.splice(0, 2)) await Deno.remove(f);
        const before = await snapshot(`${out}/checkpoint`);
        const run = await cli("train", [
          SPEC,
          "--out",
          out,
          "--resume",
          "--steps",
          "4",
          "--checkpoint-every",
          "1",
        ]);
        assertRefusal(run, /No space left on device.*; the checkpoint of step 2 in .* stays; .*--resume/);
        assert.deepEqual(changedFiles(before, await snapshot(`${out}/checkpoint`)), [], "checkpoint intact");
        assert.equal((await loadCheckpoint(out)).run.step, 2);
        const leftovers = [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => n.startsWith("."));
        assert.deepEqual(leftovers, [], "the failed save removed its temp folder");
        record(
          "a full disk during a save (tmpfs)",
          run,
          tmp,
          "checkpoint/*: unchanged; log.jsonl gains step 3 (dropped by the next --resume); training.json rewritten",
        );
        for (const f of fillers) await Deno.remove(f);
        const again = await cli("train", [
          SPEC,
          "--out",
          out,
          "--resume",
          "--steps",
          "4",
          "--checkpoint-every",
          "1",
        ]);
        assert.equal(again.code, 0, again.stderr);
        assert.equal((await loadCheckpoint(out)).run.step, 4);
      } finally {
        await unmount(mnt);
      }
    });
  },
});

Deno.test("an injected write error during a save (ENOSPC) fails the run; the previous checkpoint stays", async () => {
  await withTempDir("faults_inject_", async (tmp) => {
    const out = `${tmp}/run`;
    await trained(out, 2);
    const before = await snapshot(`${out}/checkpoint`);
    const realOpen = Deno.open;
    // Files opened for writing inside a save's temp folder fail their first write, as a full disk does.
    Deno.open = (async (path: string | URL, options?: Deno.OpenOptions) => {
      const file = await realOpen(path, options);
      if (!options?.write || !String(path).includes("/.tmp-")) return file;
      file.write = () => {
        throw Object.assign(new Error(`No space left on device (os error 28): write '${path}'`), {
          code: "ENOSPC",
        });
      };
      return file;
    }) as typeof Deno.open;
    try {
      await assert.rejects(
        train({ model: tiny, specPath: SPEC, out, resume: true, settings: { steps: 4 } }),
        (e: unknown) => isFileSystemError(e) && /No space left on device/.test(e.message),
      );
    } finally {
      Deno.open = realOpen;
    }
    assert.deepEqual(changedFiles(before, await snapshot(`${out}/checkpoint`)), [], "checkpoint intact");
    assert.equal((await loadCheckpoint(out)).run.step, 2);
    assert.deepEqual(
      [...Deno.readDirSync(out)].filter((e) => e.name.startsWith(".")),
      [],
      "no temp folder left",
    );
  });
});

/** mulberry32: the kill moments are random but the same every run (printed, so a failure replays). */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const KILL_STEPS = 12;
const killArgs = (out: string) => [
  "run",
  "-A",
  "cli/train.ts",
  SPEC,
  "--out",
  out,
  "--steps",
  String(KILL_STEPS),
  "--checkpoint-every",
  "1",
  "--log-every",
  "1",
  "--json",
  ...CONSTANT_LR,
];

/** The logged (step, loss, mae) of a run directory's log.jsonl. */
async function loggedLosses(out: string): Promise<number[][]> {
  const lines = (await Deno.readTextFile(`${out}/log.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  return lines.map((l) => [l.step, l.loss, l.mae]);
}

Deno.test("kill -9 at random moments (ten times): the run always loads and --resume gives the same losses", async (t) => {
  await withTempDir("faults_kill_", async (tmp) => {
    const straight = `${tmp}/straight`;
    const done = await new Deno.Command(Deno.execPath(), { args: killArgs(straight), stdout: "null" })
      .output();
    assert.equal(done.code, 0);
    const want = await loggedLosses(straight);
    assert.equal(want.length, KILL_STEPS);
    const random = seeded(19);
    const landed: string[] = [];
    for (let i = 0; i < 10; i++) {
      // Killed after a random number of logged steps plus a random part of a step: inside a step, a
      // log append or a checkpoint save.
      const afterSteps = 1 + Math.floor(random() * (KILL_STEPS - 2));
      const extraMs = Math.floor(random() * 30);
      await t.step(`kill ${i + 1}: after ${afterSteps} logged steps + ${extraMs} ms`, async () => {
        const out = `${tmp}/run${i}`;
        const child = new Deno.Command(Deno.execPath(), {
          args: killArgs(out),
          stdout: "piped",
          stderr: "null",
        })
          .spawn();
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let printed = "";
        while (printed.split("\n").length <= afterSteps) {
          const { value, done } = await reader.read();
          if (done) break;
          printed += value;
        }
        await new Promise((r) => setTimeout(r, extraMs));
        child.kill("SIGKILL");
        await child.status;
        await reader.cancel().catch(() => {});
        // The directory loads (no half-written file is ever read), or, killed before the first save
        // finished, it has no checkpoint yet and --resume starts the run over.
        const loaded = await loadCheckpoint(out).catch((e: Error) => e);
        landed.push(loaded instanceof Error ? "none yet" : `step ${loaded.run.step}`);
        if (loaded instanceof Error) {
          assert.match(loaded.message, /^no checkpoint in /);
          assert.ok(afterSteps <= 2, `only a kill in the first steps finds no checkpoint: ${loaded.message}`);
        } else {
          assert.ok(loaded.run.step >= 1 && loaded.run.step <= KILL_STEPS, `step ${loaded.run.step}`);
        }
        // The same command with --resume, as a person would rerun it.
        const rest = await cli("train", [...killArgs(out).slice(3), "--resume"]);
        assert.equal(rest.code, 0, rest.stderr);
        if (loaded instanceof Error) assert.match(rest.stderr, /has no checkpoint yet .*: starting it over/);
        assert.doesNotMatch(rest.stderr, /\n\s+at /);
        assert.deepEqual(
          await loggedLosses(out),
          want,
          "the resumed run's log is the straight run's, bit for bit",
        );
        assert.equal((await loadCheckpoint(out)).run.step, KILL_STEPS);
        await Deno.remove(out, { recursive: true });
      });
    }
    TABLE.push({
      name: "kill -9 at 10 random moments (checkpoint every step)",
      message: `(none: killed) checkpoint found after each kill: ${landed.join(", ")}`,
      code: 137,
      files:
        "each run directory loads or has no checkpoint yet; --resume's log.jsonl = the straight run's, bit for bit",
    });
  });
});

Deno.test("training that diverges stops at the step where it first appears, names it, keeps the last good checkpoint", async (t) => {
  await withTempDir("faults_diverge_", async (tmp) => {
    await t.step("--lr 10: the gradient overflows at step 2; the checkpoint of step 1 stays", async () => {
      const args = ["--checkpoint-every", "1", "--log-every", "1", "--lr", "10", "--steps", "20"];
      const out = `${tmp}/lr10`;
      const run = await cli("train", ["tests/fixtures/tiny_exploding.ts", "--out", out, ...args]);
      assertRefusal(
        run,
        /the gradient norm is Infinity at step 2 .*; stopping without saving it \(the checkpoint of step 1 stays\)\. Try a lower --lr/,
      );
      record(
        "--lr 10 (a loss that overflows)",
        run,
        tmp,
        "checkpoint/ = that of a 1-step run, byte for byte",
      );
      assert.equal((await loadCheckpoint(out)).run.step, 1);
      // The kept checkpoint is exactly what one good step gives (warmup 0: step 1 sees lr 10 either way).
      const one = `${tmp}/one`;
      const good = await cli("train", [
        "tests/fixtures/tiny_exploding.ts",
        "--out",
        one,
        ...args,
        "--steps",
        "1",
      ]);
      assert.equal(good.code, 0, good.stderr);
      for (const file of ["model.safetensors", "optimizer.safetensors"]) {
        assert.deepEqual(
          await Deno.readFile(`${out}/checkpoint/${file}`),
          await Deno.readFile(`${one}/checkpoint/${file}`),
        );
      }
    });
    await t.step(
      "a NaN in the batch of step 5: stopped before it, the checkpoint of step 3 stays",
      async () => {
        const args = ["--checkpoint-every", "3", ...CONSTANT_LR];
        const out = `${tmp}/nan`;
        const run = await cli("train", [
          "tests/fixtures/tiny_nan_batch.ts",
          "--out",
          out,
          ...args,
          "--steps",
          "8",
        ]);
        assertRefusal(
          run,
          /the batch of step 5 holds x\[1\] = NaN \(from the spec's data source\); stopping before training on it \(the checkpoint of step 3 stays\)/,
        );
        record("a NaN in a batch (step 5)", run, tmp, "checkpoint/ = that of a 3-step run, byte for byte");
        const three = `${tmp}/three`;
        const good = await cli("train", [
          "tests/fixtures/tiny_nan_batch.ts",
          "--out",
          three,
          ...args,
          "--steps",
          "3",
        ]);
        assert.equal(good.code, 0, good.stderr);
        for (const file of ["model.safetensors", "optimizer.safetensors"]) {
          assert.deepEqual(
            await Deno.readFile(`${out}/checkpoint/${file}`),
            await Deno.readFile(`${three}/checkpoint/${file}`),
          );
        }
      },
    );
  });
});

Deno.test({
  name: "the fault table (FAULT_TABLE=path writes it)",
  ignore: !Deno.env.get("FAULT_TABLE"),
  fn: async () => {
    const cell = (s: string) => s.replaceAll("|", "\\|");
    const lines = [
      "| case | message | exit code | files compared before and after |",
      "| --- | --- | --- | --- |",
      ...TABLE.map((r) => `| ${cell(r.name)} | ${cell(r.message)} | ${r.code} | ${cell(r.files)} |`),
    ];
    await Deno.writeTextFile(Deno.env.get("FAULT_TABLE")!, lines.join("\n") + "\n");
  },
});
