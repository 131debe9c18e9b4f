/**
 * `deno task eval` on a shapes run, for real: a tiny RGB Transfusion spec on the shapes source, trained
 * for two steps, evaluated by the CLI (which must pick the shapes evaluation from the spec's source),
 * with a stand-in VAE run for the reconstruction figures. The numbers are those of an untrained
 * model; what is checked is the path: the JSON, the grids, the dispatch and the flag errors.
 */
import assert from "node:assert/strict";
import { decodePng } from "../runtime/png.ts";
import { train } from "../runtime/train/mod.ts";
import autoencoder from "./fixtures/shapes_autoencoder.ts";
import { loadSpec } from "../cli/load_spec.ts";

const TINY_SPEC = `import { transfusion } from "../../spec/transfusion/mod.ts";
import { SHAPES_CAPTION_BYTES, shapesCaptions } from "../../data/shapes.ts";
export default transfusion({
  name: "shapes_cli_tiny",
  backbone: { dim: 16, depth: 1, heads: 2, hidden: 32 },
  text: { vocab: 261, captionLength: SHAPES_CAPTION_BYTES },
  image: { size: 32, channels: 3, patch: 8, timestepDim: 16 },
  diffusion: { schedule: "cosine", T: 50, target: "eps", noiseLimit: 25, condDropout: 0.1 },
  batch: 4,
  training: { steps: 2, lr: 1e-3 },
  data: (c, dims) => shapesCaptions(c, dims, { evalBatches: 1 }),
});
`;

async function cli(args: readonly string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/eval.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("eval on a shapes run: attribute figures, grids and the VAE's reconstruction error", async () => {
  const dir = `runs/.shapes-eval-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.writeTextFile(`${dir}/tiny_spec.ts`, TINY_SPEC);
    const specPath = `${dir}/tiny_spec.ts`;
    await train({ model: await loadSpec(specPath), specPath, out: `${dir}/run`, settings: { steps: 2 } });
    await train({
      model: autoencoder,
      specPath: "tests/fixtures/shapes_autoencoder.ts",
      out: `${dir}/vae`,
      settings: { steps: 1 },
    });
    const quick = ["--generate", "2", "--captions", "1", "--steps", "2", "--loss-batches", "1"];
    const r = await cli([`${dir}/run`, "--json", ...quick, "--vae", `${dir}/vae`, "--reconstruct", "3"]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout);
    assert.equal(json.step, 2);
    assert.equal(json.generation.heldOut.count, 2);
    assert.equal(json.captioning.train.count, 1);
    for (const a of ["count", "colour", "kind", "size", "where", "all"]) {
      const v = json.generation.heldOut.accuracy[a];
      assert.ok(v >= 0 && v <= 1, `${a}: ${v}`);
    }
    assert.ok(json.heldOutLosses.values.loss > 0);
    assert.equal(json.autoencoder.count, 3);
    assert.ok(json.autoencoder.mse > 0 && Number.isFinite(json.autoencoder.psnr));
    const grid = decodePng(await Deno.readFile(`${dir}/run/eval/generated_heldout.png`), "grid");
    assert.deepEqual([grid.width, grid.height], [2 * 32 + 3 * 2, 32 + 2 * 2]);
    const recon = decodePng(await Deno.readFile(`${dir}/run/eval/reconstructions.png`), "recon");
    assert.deepEqual([recon.width, recon.height], [3 * 32 + 4 * 2, 2 * 32 + 3 * 2]);
    assert.equal((await Deno.readTextFile(`${dir}/run/eval/prompts.txt`)).trim().split("\n").length, 4);

    const bad = await cli([`${dir}/run`, "--generate", "0"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--generate must be an integer in 1\.\.10000, got "0"/);
    // An MNIST-only flag is refused by the shapes evaluation, which shows it was picked.
    const mnistFlag = await cli([`${dir}/run`, "--n-per-digit", "1"]);
    assert.equal(mnistFlag.code, 1);
    assert.match(mnistFlag.stderr, /unknown flag --n-per-digit[\s\S]*--generate K/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
