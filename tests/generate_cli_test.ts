/**
 * `deno task generate` end to end on the GPU (lavapipe here), on runs trained for one step at tiny
 * sizes: a text-only language model (examples/text_lm.ts) continues its prompt; a two-image spec
 * (examples/two_images.ts) follows `--row` and writes both images as PNGs with generated.json; a
 * `--row` that does not fit the template is refused naming the template, with nothing written.
 * Slow on a CPU adapter (two trainings, each compiling a train step); the sizes are the smallest the
 * specs accept.
 */
import assert from "node:assert/strict";
import { cli } from "./fixtures/cli_runs.ts";
import { withTempDir } from "./fixtures/tiny_runs.ts";
import { decodePng } from "../runtime/png.ts";

const TINY = [
  "--set",
  "backbone.dim=16",
  "--set",
  "backbone.depth=1",
  "--set",
  "backbone.heads=2",
  "--set",
  "backbone.hidden=32",
  "--dim",
  "batch=2",
  "--steps",
  "1",
];

async function train(spec: string, out: string): Promise<void> {
  const run = await cli("train", [spec, ...TINY, "--out", out]);
  assert.equal(run.code, 0, run.stderr);
}

Deno.test("generate: a text-only LM continues its prompt, within --max-tokens", async () => {
  await withTempDir("generate_text_", async (dir) => {
    await train("examples/text_lm.ts", `${dir}/run`);
    const out = await cli("generate", [
      `${dir}/run`,
      "--prompt",
      "a hand",
      "--max-tokens",
      "5",
      "--out",
      `${dir}/g`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const [row] = JSON.parse(await Deno.readTextFile(`${dir}/g/generated.json`));
    assert.equal(row.prompt, "a hand");
    assert.ok(["eos", "budget", "length"].includes(row.finish), row.finish);
    // An untrained model may write bytes that are not UTF-8, so count its tokens, not the text's bytes.
    assert.ok(row.tokens.length <= 5, JSON.stringify(row.tokens));
    if (row.finish === "budget") assert.equal(row.tokens.length, 5);
    assert.match(out.stdout, /^"a hand/);
  });
});

Deno.test("generate: a byte-level prefix-LM continues its prompt (no BOS, the prompt as prefix)", async () => {
  await withTempDir("generate_prefix_", async (dir) => {
    const tiny = ["dim=16", "heads=2", "layers=1", "hidden=32"].flatMap((s) => ["--set", s]);
    const trained = await cli("train", [
      "examples/prefix_lm.ts",
      ...tiny,
      "--dim",
      "batch=2",
      "--steps",
      "2",
      "--out",
      `${dir}/run`,
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const out = await cli("generate", [
      `${dir}/run`,
      "--prompt",
      "abc=",
      "--max-tokens",
      "3",
      "--out",
      `${dir}/g`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const [row] = JSON.parse(await Deno.readTextFile(`${dir}/g/generated.json`));
    assert.equal(row.prompt, "abc=");
    // 256 byte tokens hold no EOS, so the row runs to its budget; every sampled id is a byte.
    assert.equal(row.finish, "budget");
    assert.equal(row.tokens.length, 3);
    assert.ok(row.tokens.every((id: number) => id >= 0 && id < 256), JSON.stringify(row.tokens));
    assert.match(out.stdout, /^"abc=/);
  });
});

Deno.test("generate: two images with text between, both written as PNGs; a bad --row is refused", async () => {
  await withTempDir("generate_two_", async (dir) => {
    await train("examples/two_images.ts", `${dir}/run`);
    const row = 'text:"a 3" image text:"and a 7" image';
    const out = await cli("generate", [
      `${dir}/run`,
      "--row",
      row,
      "--steps",
      "2",
      "--cfg",
      "0",
      "--scale",
      "1",
      "--out",
      `${dir}/g`,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const [made] = JSON.parse(await Deno.readTextFile(`${dir}/g/generated.json`));
    assert.deepEqual(made.spans.map((s: { name: string }) => s.name), [
      "caption",
      "image1",
      "between",
      "image2",
    ]);
    assert.deepEqual(made.spans[2], { name: "between", text: "and a 7", written: false });
    const pngs = [];
    for (const name of ["image1", "image2"]) {
      const png = decodePng(await Deno.readFile(`${dir}/g/${name}.png`), name);
      assert.equal(png.width, 8);
      assert.equal(png.height, 8);
      pngs.push(png);
    }
    assert.notDeepEqual(pngs[0]!.rgba, pngs[1]!.rgba, "the two images draw different noise");
    assert.match(out.stdout, /image1 -> .*image1\.png; between "and a 7" \(given\); image2 -> .*image2\.png/);

    const bad = await cli("generate", [`${dir}/run`, "--row", 'text:"a 3" image', "--out", `${dir}/bad`]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /--row has 2 span\(s\) \(text image\); the run's row template has 4: text:caption\(4\) image:image1 text:between\(8\) image:image2/,
    );
    await assert.rejects(Deno.stat(`${dir}/bad`), Deno.errors.NotFound);
  });
});
