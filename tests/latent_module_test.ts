/**
 * The module `deno task compile` writes for a spec over VAE latents carries that VAE: plan.json
 * holds its encode and decode entries, decoder.safetensors its weights, and `generate` returns
 * pictures of the VAE's pixel shape equal to what the VAE run's decode entry makes of the returned
 * latents; MODEL and `info` state both shapes. A spec whose VAE run is missing does not compile.
 */
import assert from "node:assert/strict";
import { compileModule, randomWeights } from "../cli/compile.ts";
import { loadSpec } from "../cli/load_spec.ts";
import { compileVae } from "../data/latent_codec.ts";
import { readLatents } from "../data/shapes_latents.ts";
import { Executor } from "../runtime/executor.ts";
import type { GeneratedModule } from "../runtime/standalone/api.ts";
import { latentFixture } from "./fixtures/latent_runs.ts";

type Loaded = GeneratedModule & { readonly MODEL: Record<string, unknown> };

Deno.test("a module of latents generates the VAE's pictures of its latents", async () => {
  const f = await latentFixture("latent-module-test", false);
  const out = `${f.dir}/module`;
  try {
    const model = await loadSpec(f.latentSpecPath);
    const { files, params } = await compileModule(model, f.latentSpecPath, { out, batch: 1 });
    assert.ok((files["decoder.safetensors"] ?? 0) > 0, "decoder.safetensors written");
    await Deno.writeFile(`${out}/model.safetensors`, randomWeights(params, 5));
    const mod = (await import(new URL(`file://${Deno.cwd()}/${out}/mod.ts`).href)) as Loaded;
    assert.deepEqual(mod.MODEL, {
      name: "latent_test",
      batch: 1,
      imageSize: 32,
      channels: 3,
      latent: { size: 8, channels: 2, vaeRun: f.vaeRun, step: 1 },
    });
    const m = await mod.load(`${out}/model.safetensors`);
    try {
      assert.deepEqual(m.info.latent, { size: 8, channels: 2, vaeRun: f.vaeRun, step: 1 });
      assert.deepEqual([m.info.imageSize, m.info.channels], [32, 3]);
      const { images } = await m.generate({ prompt: "a red circle", steps: 2, guidance: 0, maxTokens: 0 });
      assert.equal(images.length, 1);
      const image = images[0]!;
      assert.deepEqual([image.width, image.height, image.values.length], [32, 32, 3 * 32 * 32]);
      assert.equal(image.latent?.length, 2 * 8 * 8);
      // The oracle: the VAE run's decode entry run here on the latent, scaled and transposed by hand.
      const expected = await decodeByHand(f.vaeRun, image.latent!);
      let worst = 0;
      expected.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - image.values[k]!))));
      assert.ok(worst < 1e-4, `the module's picture is ${worst} off the VAE's decode of its latent`);
      // A picture is captioned through the VAE's encoder; a generated one by its own latent.
      assert.equal(typeof (await m.caption({ width: 32, height: 32, rgba: image.rgba })), "string");
      await assert.rejects(m.caption({ width: 8, height: 8, rgba: new Uint8ClampedArray(256) }), /32x32/);
    } finally {
      m.close();
    }

    // The VAE run gone: the spec cannot say what its latents look like, and compile says why.
    await Deno.remove(f.vaeRun, { recursive: true });
    // (A copy of the spec: the loaded one keeps its latents in memory, as a fresh process would not.)
    const orphanPath = `${f.dir}/latent_orphan.ts`;
    await Deno.copyFile(f.latentSpecPath, orphanPath);
    await assert.rejects(
      compileModule(await loadSpec(orphanPath), orphanPath, { out: `${f.dir}/orphan`, batch: 1 }),
      new RegExp(`no VAE run at ${f.vaeRun}.*\\n\\(a module of latents carries its VAE's decoder`, "s"),
    );
  } finally {
    await f.remove();
  }
});

/** latent [2, 8, 8] (normalized) -> z = v * std + mean as NHWC [1, 8, 8, 2] -> decode -> [3, 32, 32]. */
async function decodeByHand(vaeRun: string, latent: Float32Array): Promise<Float32Array> {
  const table = readLatents(vaeRun, 8, 4)!;
  const z = new Float32Array(2 * 8 * 8);
  for (let c = 0; c < 2; c++) {
    for (let p = 0; p < 64; p++) z[p * 2 + c] = latent[c * 64 + p]! * table.std[c]! + table.mean[c]!;
  }
  const vae = await compileVae(vaeRun, ["decode"], { batch: 1 });
  const executor = await Executor.create(vae.plan);
  try {
    await executor.setAllParams(vae.params);
    const y = (await executor.run("decode", { z }))["image"] as Float32Array; // [1, 32, 32, 3]
    const out = new Float32Array(3 * 32 * 32);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) out[c * 1024 + p] = y[p * 3 + c]!;
    return out;
  } finally {
    executor.destroy();
  }
}
