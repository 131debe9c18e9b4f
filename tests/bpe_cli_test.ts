/** `deno task tokenizer`: training on a folder, the printed compression, and its usage errors. */
import assert from "node:assert/strict";
import { loadTokenizerJson } from "../runtime/mod.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";

const CLI = new URL("../cli/tokenizer.ts", import.meta.url).pathname;

async function tokenizerCli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, out: new TextDecoder().decode(stdout), err: new TextDecoder().decode(stderr) };
}

Deno.test("tokenizer train: a folder of text files in path order, bytes per token printed", async () => {
  await withTempDir("bpe_cli_test_", async (dir) => {
    await Deno.mkdir(`${dir}/corpus/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/corpus/b.txt`, "the cat sat on the mat\n".repeat(20));
    await Deno.writeTextFile(`${dir}/corpus/sub/a.md`, "the dog sat on the log\n".repeat(20));
    await Deno.writeTextFile(`${dir}/corpus/.hidden`, "\u00ff\u00fe never read");
    const out = `${dir}/tok.json`;
    const run = await tokenizerCli("train", `${dir}/corpus`, "--vocab", "270", "--out", out);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /trained on 2 file\(s\), 920 bytes, in [\d.]+ s: vocab 270, 9 merges/);
    const bpt = Number(run.out.match(/compression on the corpus: ([\d.]+) bytes per token/)?.[1]);
    const { tokenizer, notes } = await loadTokenizerJson(out);
    const text = "the cat sat on the mat\n".repeat(20) + "the dog sat on the log\n".repeat(20);
    assert.equal(bpt.toFixed(3), (920 / tokenizer.encode(text).length).toFixed(3));
    assert.ok(bpt > 2, `${bpt} bytes per token`);
    assert.deepEqual(notes, []);

    const again = await tokenizerCli(
      "train",
      `${dir}/corpus`,
      "--vocab",
      "270",
      "--out",
      `${dir}/again.json`,
    );
    assert.equal(again.code, 0, again.err);
    assert.equal(
      await Deno.readTextFile(`${dir}/again.json`),
      await Deno.readTextFile(out),
      "same corpus, same file",
    );

    const encode = await tokenizerCli("encode", out, "the cat");
    assert.equal(encode.code, 0, encode.err);
    assert.ok(encode.out.includes(JSON.stringify(tokenizer.encode("the cat"))), encode.out);
  });
});

Deno.test("tokenizer train: usage errors name the problem", async (t) => {
  const cases: [string[], RegExp][] = [
    [["train", "README.md", "--out", "/tmp/x.json"], /--vocab N is required/],
    [
      ["train", "README.md", "--vocab", "100", "--out", "/tmp/x.json"],
      /--vocab must be an integer in 261\.\./,
    ],
    [["train", "README.md", "--vocab", "300"], /--out tokenizer.json is required/],
    [
      ["train", "/nonexistent/corpus", "--vocab", "300", "--out", "/tmp/x.json"],
      /corpus path \/nonexistent\/corpus/,
    ],
    [["frobnicate"], /unknown subcommand "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const run = await tokenizerCli(...args);
      assert.equal(run.code, 1, run.out);
      assert.match(run.err, message);
    });
  }
});
