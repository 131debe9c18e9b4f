/**
 * `deno task train` as a subprocess: output formats, resume, refusals that leave the run directory
 * untouched, and Ctrl-C. Each run trains tests/fixtures/tiny_regression.ts for a few steps.
 */
import assert from "node:assert/strict";
import { exists } from "../runtime/train/run_dir.ts";
import { loadCheckpoint } from "../runtime/checkpoint.ts";

const SPEC = "tests/fixtures/tiny_regression.ts";
const DEEP_SPEC = "tests/fixtures/tiny_regression_deep.ts";
/** A constant learning rate, so a run split at any step sees the same schedule as a straight one. */
const CONSTANT_LR = ["--lr", "0.01", "--lr-floor", "0.01", "--warmup", "0"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function train(...args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/train.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const jsonLines = (run: Run) => run.stdout.trim().split("\n").map((l) => JSON.parse(l));
const losses = (run: Run) => jsonLines(run).map((l) => [l.step, l.loss, l.mae]);

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "train_cli_test_" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file under `dir` with a hash of its bytes and its modification time. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(full);
      else {
        const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(full));
        const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
        files.set(full, `${hex} @${(await Deno.stat(full)).mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return files;
}

Deno.test("--json prints one object per logged step and nothing else; plain output is readable", async () => {
  await withDir(async (dir) => {
    const run = await train(SPEC, "--out", `${dir}/json`, "--steps", "5", "--log-every", "1", "--json");
    assert.equal(run.code, 0, run.stderr);
    const lines = jsonLines(run);
    assert.deepEqual(lines.map((l) => l.step), [1, 2, 3, 4, 5]);
    for (const line of lines) {
      for (const key of ["step", "loss", "mae", "lr", "grad_norm", "ms", "tok_s"]) {
        assert.equal(typeof line[key], "number", `"${key}" in ${JSON.stringify(line)}`);
      }
      assert.ok(!("lm" in line) && !("diffusion" in line), "no metrics the spec does not have");
    }
    const log = (await Deno.readTextFile(`${dir}/json/log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(log, lines, "log.jsonl holds the same records");

    const plain = await train(SPEC, "--out", `${dir}/plain`, "--steps", "3", "--batch", "4");
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /^step 3\/3 {2}loss \d+\.\d{4} {2}mae \d+\.\d{4} {2}lr .* tok\/s .* ms\/step {2}ETA /m,
    );
    assert.deepEqual((await loadCheckpoint(`${dir}/plain`)).run.dims, { batch: 4 });
  });
});

Deno.test("3 steps then --resume to 6 gives the losses of 6 straight steps, bit for bit", async () => {
  await withDir(async (dir) => {
    const common = ["--log-every", "1", "--json", ...CONSTANT_LR];
    const straight = await train(SPEC, "--out", `${dir}/straight`, "--steps", "6", ...common);
    const first = await train(SPEC, "--out", `${dir}/split`, "--steps", "3", ...common);
    const rest = await train(SPEC, "--out", `${dir}/split`, "--steps", "6", "--resume", ...common);
    for (const run of [straight, first, rest]) assert.equal(run.code, 0, run.stderr);
    assert.match(rest.stderr, /resuming at step 3/);
    assert.deepEqual([...losses(first), ...losses(rest)], losses(straight));
  });
});

Deno.test("refusals exit 1 with one clear message and leave the run directory as it was", async (t) => {
  await withDir(async (dir) => {
    const out = `${dir}/run`;
    const made = await train(SPEC, "--out", out, "--steps", "2");
    assert.equal(made.code, 0, made.stderr);
    const before = await snapshot(out);
    const refused = async (pattern: RegExp, ...args: string[]) => {
      const run = await train(...args);
      assert.equal(run.code, 1, `exit code of ${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /^error: /);
      assert.match(run.stderr, pattern);
      assert.ok(!run.stderr.includes("    at "), `no stack trace:\n${run.stderr}`);
      assert.deepEqual(await snapshot(out), before, "the run directory is unchanged");
      return run.stderr;
    };

    await t.step("a new run where a checkpoint is", async () => {
      await refused(
        /already holds a run \(checkpoint, log\.jsonl\); pass --resume .* or --out/,
        SPEC,
        "--out",
        out,
      );
    });
    await t.step("resuming with another spec names the parameters", async () => {
      const message = await refused(
        /does not match the spec/,
        DEEP_SPEC,
        "--out",
        out,
        "--resume",
        "--steps",
        "4",
      );
      assert.match(message, /missing \(2\): l3\.w, l3\.b/);
      assert.match(message, /l2\.w is F32 \[16, 1\] in the file, F32 \[16, 16\] in the spec/);
    });
    await t.step("resuming with another config or batch names the keys", async () => {
      await refused(
        /config hidden is 8 here but 16 .*--set hidden=16/,
        SPEC,
        "--out",
        out,
        "--resume",
        "--set",
        "hidden=8",
      );
      await refused(/dim batch is 2 here but 8 .*--batch 8/, SPEC, "--out", out, "--resume", "--batch", "2");
    });
    await t.step("unknown and out-of-range config values", async () => {
      await refused(
        /unknown config key "width"; known keys: dim, hidden, noise/,
        SPEC,
        "--set",
        "width=3",
        "--out",
        `${dir}/x`,
      );
      await refused(
        /config "hidden" = -3: .*(>0|positive)/i,
        SPEC,
        "--set",
        "hidden=-3",
        "--out",
        `${dir}/x`,
      );
      await refused(
        /training setting lr = -1: expected a finite number >= 0/,
        SPEC,
        "--lr=-1",
        "--out",
        `${dir}/x`,
      );
      await refused(/--steps expects a number, got "many"/, SPEC, "--steps", "many", "--out", `${dir}/x`);
      assert.ok(!(await exists(`${dir}/x`)), "no run directory was made for a refused run");
    });
    await t.step("a spec without data, a file without a model", async () => {
      await refused(
        /spec "tiny".*declares no training data: add `data:/,
        "examples/tiny.ts",
        "--out",
        `${dir}/x`,
      );
      const noModel = `${dir}/no_model.ts`;
      await Deno.writeTextFile(noModel, "export const answer = 42;\n");
      await refused(/has no default-exported model .*it exports answer/, noModel, "--out", `${dir}/x`);
    });
    await t.step("a weights-only checkpoint: --resume is refused, --init-from starts from it", async () => {
      const optimizer = `${out}/checkpoint/optimizer.safetensors`;
      const bytes = await Deno.readFile(optimizer);
      await Deno.remove(optimizer);
      const weightsOnly = await snapshot(out);
      const run = await train(SPEC, "--out", out, "--resume", "--steps", "4");
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /optimizer\.safetensors is missing: this is a weights-only checkpoint/);
      assert.match(run.stderr, /--init-from .*run\/checkpoint/);
      assert.deepEqual(await snapshot(out), weightsOnly, "nothing written");
      const started = await train(SPEC, "--out", `${dir}/from-weights`, "--init-from", out, "--steps", "1");
      assert.equal(started.code, 0, started.stderr);
      await Deno.writeFile(optimizer, bytes);
    });
    await t.step("a corrupt checkpoint", async () => {
      const model = `${out}/checkpoint/model.safetensors`;
      const bytes = await Deno.readFile(model);
      await Deno.writeFile(model, bytes.subarray(0, bytes.length - 7));
      const corrupt = await snapshot(out);
      const run = await train(SPEC, "--out", out, "--resume", "--steps", "4");
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /^error: .*checkpoint\/model\.safetensors/);
      assert.deepEqual(await snapshot(out), corrupt, "nothing written");
    });
  });
});

Deno.test("Ctrl-C saves a checkpoint, exits 130, and --resume continues the same run", async () => {
  await withDir(async (dir) => {
    const out = `${dir}/run`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/train.ts",
        SPEC,
        "--out",
        out,
        "--steps",
        "100000",
        "--log-every",
        "1",
        "--json",
        ...CONSTANT_LR,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Interrupt once the first step has been logged.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let printed = "";
    while (!printed.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      printed += value;
    }
    child.kill("SIGINT");
    for (let r = await reader.read(); !r.done; r = await reader.read()) printed += r.value;
    const status = await child.status;
    const stderr = await new Response(child.stderr).text();
    assert.equal(status.code, 130, stderr);
    assert.match(stderr, /interrupted: saving a checkpoint/);
    const stopped = (await loadCheckpoint(out)).run.step;
    const logged = printed.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(logged.at(-1).step, stopped, "the step it stopped at was logged and saved");

    const total = String(stopped + 3);
    const rest = await train(SPEC, "--out", out, "--resume", "--steps", total, "--log-every", "1", "--json");
    const straight = await train(
      SPEC,
      "--out",
      `${dir}/straight`,
      "--steps",
      total,
      "--log-every",
      "1",
      "--json",
      ...CONSTANT_LR,
    );
    assert.equal(rest.code, 0, rest.stderr);
    assert.deepEqual(
      [...logged.map((l) => [l.step, l.loss, l.mae]), ...losses(rest)],
      losses(straight),
    );
  });
});
