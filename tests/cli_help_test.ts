import assert from "node:assert/strict";
import { type Command, type Flags, helpText, parseWith, usageLine, wantsHelp } from "../cli/usage.ts";
import { TRAIN } from "../cli/train.ts";
import { SAMPLE } from "../cli/sample.ts";
import { GENERATE } from "../cli/generate.ts";
import { CAPTION } from "../cli/caption.ts";
import { EVAL } from "../cli/eval.ts";
import { DEMO } from "../cli/demo.ts";
import { EXPLAIN } from "../cli/explain.ts";
import { PROFILE } from "../cli/profile.ts";
import { COMPILE } from "../cli/compile.ts";
import { EXPORT } from "../cli/export.ts";
import { IR } from "../cli/ir.ts";
import { TUNE } from "../cli/tune.ts";
import { TOKENIZER } from "../cli/tokenizer.ts";
import { SHAPES_EVAL } from "../data/shapes_eval_cli.ts";

// Every deno task that runs a cli/ file prints a help generated from the table it parses with: each
// declared flag, its meaning, the help flag itself and an example, with exit code 0.

const COMMANDS: readonly Command<Flags>[] = [
  TRAIN,
  SAMPLE,
  GENERATE,
  CAPTION,
  EVAL,
  DEMO,
  EXPLAIN,
  PROFILE,
  COMPILE,
  EXPORT,
  IR,
  TUNE,
  TOKENIZER,
];

const ROOT = new URL("..", import.meta.url).pathname;

/** The deno.json tasks that run a file under cli/. */
async function cliTasks(): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks as Record<string, string>;
  return Object.entries(tasks).filter(([, line]) => / cli\/\w+\.ts/.test(line)).map(([name]) => name);
}

async function task(name: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", name, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("every cli task of deno.json prints a help and exits 0", async (t) => {
  const tasks = await cliTasks();
  assert.ok(tasks.length >= 11, `expected the cli tasks of deno.json, found ${tasks.join(", ")}`);
  for (const c of COMMANDS) assert.ok(tasks.includes(c.name), `deno task ${c.name} is in deno.json`);
  // A task added later is held to the same help; its flags are checked once its table is listed above.
  for (const name of tasks.filter((n) => !COMMANDS.some((c) => c.name === n))) {
    await t.step(name, async () => {
      const { code, stdout, stderr } = await task(name, "--help");
      assert.equal(code, 0, `deno task ${name} --help exited ${code}: ${stderr}`);
      assert.match(stdout, /-h, --help +print this help and exit/);
      assert.match(stdout, new RegExp(`Examples?:\\n  deno task ${name}`));
    });
  }
});

for (const c of COMMANDS) {
  Deno.test(`deno task ${c.name} --help lists every flag, exit 0`, async () => {
    for (const flag of ["--help", "-h"]) {
      const { code, stdout, stderr } = await task(c.name, flag);
      assert.equal(code, 0, `deno task ${c.name} ${flag} exited ${code}: ${stderr}`);
      assert.ok(stdout.startsWith(`deno task ${c.name}`), stdout.slice(0, 200));
      for (const [name, f] of Object.entries(c.flags)) {
        const line = stdout.split("\n").find((l) => new RegExp(`^  --${name}( |$)`).test(l));
        assert.ok(line, `--${name} missing from deno task ${c.name} --help:\n${stdout}`);
        // the meaning is on the flag's line, or on the next one when the flag column is too wide
        const at = stdout.indexOf(line);
        assert.ok(stdout.slice(at, at + line.length + 120).includes(f.help), `--${name}: "${f.help}"`);
      }
      assert.match(stdout, /-h, --help +print this help and exit/);
      assert.match(stdout, new RegExp(`Examples?:\\n  deno task ${c.name}`));
    }
  });
}

Deno.test("eval --help also lists the shapes evaluation's flags", async () => {
  const { code, stdout } = await task("eval", "--help");
  assert.equal(code, 0);
  for (const name of Object.keys(SHAPES_EVAL.flags)) assert.match(stdout, new RegExp(`^  --${name}\\b`, "m"));
});

Deno.test("help text: defaults, required and repeatable flags are said", () => {
  const text = helpText(TRAIN);
  assert.match(text, /--steps N +total optimizer steps .*\(default: 1000\)/);
  assert.match(text, /--set key=value +override a config value.*\(repeatable\)/);
  assert.match(helpText(PROFILE), /--warmup N +runs before the profiled one \(default: 2\)/);
  assert.match(helpText(SAMPLE), /--prompt TEXT +the caption to draw \(required\)/);
  const usage = usageLine(SAMPLE);
  assert.match(usage, /^usage: deno task sample <DIR> --prompt TEXT \[--n K\]/);
  assert.match(usageLine(TRAIN), /\[--set key=value\]\.\.\. \[--dim name=N\]\.\.\./);
});

Deno.test("an unknown flag is named, with the nearest known one and a pointer to --help", async () => {
  assert.throws(
    () => parseWith(TRAIN, ["spec.ts", "--stpes", "3"]),
    /^UsageError: unknown flag --stpes for deno task train; did you mean --steps\?\nusage: deno task train <spec.ts> \[--steps N\]/,
  );
  assert.throws(() => parseWith(EXPLAIN, ["spec.ts", "--zzzzzz"]), (e: Error) => {
    assert.equal(
      e.message,
      `unknown flag --zzzzzz for deno task explain\n${
        usageLine(EXPLAIN)
      }\n(deno task explain --help lists the flags)`,
    );
    return true;
  });
  assert.throws(
    () => parseWith(IR, ["spec.ts", "--entry"]),
    /argument missing\nusage: deno task ir <spec.ts>/,
  );
  assert.throws(
    () => parseWith(SAMPLE, ["run", "--prompt", "3", "--cfg", "-2"]),
    /^UsageError: --cfg -2: a value that starts with "-" is written --cfg=-2\nusage: deno task sample/,
  );
  const { code, stderr } = await task("ir", "examples/tiny.ts", "--entri", "loss");
  assert.equal(code, 1);
  assert.match(stderr, /^error: unknown flag --entri for deno task ir; did you mean --entry\?/);
});

Deno.test("--help is seen before a `--` only, and the parsed values keep their types", () => {
  assert.ok(wantsHelp(["x.ts", "-h"]));
  assert.ok(!wantsHelp(["x.ts", "--", "--help"]));
  const { values, positionals } = parseWith(TRAIN, ["x.ts", "--set", "a=1", "--set", "b=2", "--resume"]);
  assert.deepEqual(positionals, ["x.ts"]);
  assert.deepEqual(values.set, ["a=1", "b=2"]);
  assert.equal(values.resume, true);
  assert.deepEqual(values.dim, []);
});
