/**
 * Your own data on the GPU, end to end: a tiny Transfusion spec (dim 16, depth 1) whose `data` is a
 * folder of captioned pictures trains a few steps, and the trained run samples an image for a
 * caption, and `deno task sample` writes it in the model's own frame (16x16 RGB, not MNIST's 28x28
 * gray digits). Then `deno task train --data jsonl:...` trains the same spec on a JSONL file from
 * the command line, records it for --resume, refuses to switch it, names a missing folder, and
 * `deno task caption` of that run reads a JPEG as its training pictures were read.
 */
import assert from "node:assert/strict";
import { train } from "../runtime/train/mod.ts";
import { generateImages, loadRun } from "../runtime/generate/mod.ts";
import { decode } from "fast-png";

const TINY_SPEC = `import { transfusion } from "../../spec/transfusion/mod.ts";
import { imageFolder } from "../../data/own_images.ts";
export default transfusion({
  name: "own_images_tiny",
  backbone: { dim: 16, depth: 1, heads: 2, hidden: 32 },
  text: { vocab: 261, captionLength: 32 },
  image: { size: 16, channels: 3, patch: 4, timestepDim: 16 },
  diffusion: { schedule: "cosine", T: 50, target: "eps", noiseLimit: 25, condDropout: 0.1 },
  batch: 4,
  training: { steps: 3, lr: 1e-3 },
  data: imageFolder(new URL("../../tests/fixtures/own_data/images/", import.meta.url)),
});
`;

const decoder = new TextDecoder();
async function trainCli(args: readonly string[], file = "cli/train.ts") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("own pictures: a tiny Transfusion trains on a folder and samples an image", async (t) => {
  // The spec must be importable by path (loadRun, the CLI): a scratch folder under runs/.
  const dir = `runs/.own-data-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    const specPath = `${dir}/tiny.ts`;
    await Deno.writeTextFile(specPath, TINY_SPEC);
    const spec = (await import(`../${specPath}`)).default;

    await t.step("trains 3 steps on the folder and samples", async () => {
      const notes: string[] = [];
      const out = `${dir}/folder_run`;
      const result = await train({ model: spec, specPath, out, onNote: (n) => notes.push(n) });
      assert.equal(result.step, 3);
      assert.ok(
        notes.some((n) => /own images \(folder .*\): 7 train \/ 1 held-out, 16x16 RGB/.test(n)),
        notes.join("\n"),
      );
      for (const r of result.records) assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);

      const loaded = await loadRun(out);
      // The plain denoise entry (no KV-cache entries to build): a smoke test of sampling, not speed.
      const run = { config: loaded.config, entry: loaded.entry };
      const prompts = ["a red square"];
      const [image] = await generateImages(run, prompts, { steps: 2, cfg: 1, seed: 5 });
      assert.equal(image!.length, 3 * 16 * 16);
      assert.ok(image!.every(Number.isFinite), "the sampled image is finite");
      assert.ok(new Set(image).size > 1, "the sampled image is not constant");
      const [again] = await generateImages(run, prompts, { steps: 2, cfg: 1, seed: 5 });
      assert.deepEqual(again, image);
      loaded.destroy();

      // The CLI grid: 2 frames of 16x16 RGB side by side on a 2-pixel separator.
      const grid = `${dir}/grid.png`;
      const sampled = await trainCli(
        [out, "--prompt", "a red square", "--n", "2", "--steps", "2", "--cfg", "1", "--out", grid],
        "cli/sample.ts",
      );
      assert.equal(sampled.code, 0, sampled.stderr);
      const png = decode(await Deno.readFile(grid));
      assert.deepEqual([png.width, png.height, png.channels], [2 * 16 + 3 * 2, 16 + 2 * 2, 3]);
    });

    await t.step("the CLI trains on --data jsonl:..., records it, and resumes with it", async () => {
      const out = `${dir}/cli_run`;
      const pairs = "jsonl:tests/fixtures/own_data/pairs.jsonl";
      const first = await trainCli([specPath, "--data", pairs, "--steps", "2", "--out", out]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stderr,
        /own images \(jsonl tests\/fixtures\/own_data\/pairs.jsonl\): 2 train \/ 1 held-out/,
      );
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/data.json`)), { data: pairs });

      const other = await trainCli([
        specPath,
        "--resume",
        "--data",
        "images:tests/fixtures/own_data/images",
        "--out",
        out,
      ]);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /was trained with --data jsonl:.*pairs.jsonl; --resume with --data images:/);

      const resumed = await trainCli([specPath, "--resume", "--steps", "3", "--out", out]);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stderr, /resuming at step 2 own_images_tiny: own images \(jsonl/);

      // A JPEG (which the MNIST digit view refuses) is read as the training pictures were.
      const jpeg = "tests/fixtures/own_data/images/cyan_frame.jpg";
      const captioned = await trainCli([out, "--image", jpeg], "cli/caption.ts");
      assert.equal(captioned.code, 0, captioned.stderr);
      assert.equal(captioned.stdout.trim().split("\n").length, 1, captioned.stdout);
    });

    await t.step("a missing folder is one clear line, exit 1", async () => {
      const missing = await trainCli([specPath, "--data", `images:${dir}/nowhere`, "--out", `${dir}/none`]);
      assert.equal(missing.code, 1);
      assert.equal(
        missing.stderr.trim().split("\n").at(-1),
        `error: ${dir}/nowhere: the image data set cannot be read (no such file or folder)`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
