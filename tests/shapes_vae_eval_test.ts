/**
 * `deno task eval` on a VAE run trained on the shapes images: a two-width VAE trained for one step,
 * evaluated by the CLI, which must pick the reconstruction evaluation from the spec's source. The
 * numbers are an untrained model's; what is checked is the path, the JSON and the grid.
 */
import assert from "node:assert/strict";
import { decodePng } from "../runtime/png.ts";
import { train } from "../runtime/train/mod.ts";
import { loadSpec } from "../cli/load_spec.ts";

const TINY_VAE = `import { VAE_CONFIG, vaeSpec } from "../../examples/vae.ts";
export default vaeSpec("vae_tiny_shapes", {
  ...VAE_CONFIG, data: "shapes", size: 32, channels: 3, widths: [2], latentChannels: 1,
}, 2);
`;

Deno.test("eval on a shapes VAE run: held-out MSE and PSNR, and the grid of inputs over reconstructions", async () => {
  const dir = `runs/.shapes-vae-eval-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.writeTextFile(`${dir}/tiny_vae.ts`, TINY_VAE);
    const specPath = `${dir}/tiny_vae.ts`;
    await train({ model: await loadSpec(specPath), specPath, out: `${dir}/run`, settings: { steps: 1 } });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/eval.ts", `${dir}/run`, "--json", "--reconstruct", "3"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr));
    const json = JSON.parse(text.decode(out.stdout));
    assert.equal(json.step, 1);
    assert.equal(json.heldOutScenes, 3);
    const { mse, psnr, count } = json.reconstruction;
    assert.equal(count, 3);
    assert.ok(mse > 0, `mse ${mse}`);
    assert.ok(Math.abs(psnr - 10 * Math.log10(4 / mse)) < 1e-9);
    const grid = decodePng(await Deno.readFile(`${dir}/run/eval/reconstructions.png`), "recon");
    assert.deepEqual([grid.width, grid.height], [3 * 32 + 4 * 2, 2 * 32 + 3 * 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
