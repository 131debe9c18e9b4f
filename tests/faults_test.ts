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
  const message = (run.stderr.split("\n").find((l) => l.startsWith("error: ")) ?? run.stderr.trim())
    .replaceAll(dir, "DIR");
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
      "run.json with a negative step": /run\.json is malformed: "step"/,
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
