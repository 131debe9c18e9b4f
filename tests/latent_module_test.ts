/**
 * The module `deno task compile` writes for a spec over VAE latents carries that VAE: plan.json
 * holds its encode and decode entries, decoder.safetensors its weights, and `generate` returns
 * pictures of the VAE's pixel shape equal to what the VAE run's decode entry makes of the returned
 * latents; MODEL and `info` state both shapes. A spec whose VAE run is missing does not compile.
 */
import assert from "node:assert/strict";
import { compileModule, randomWeights } from "../cli/compile.ts";
import { loadSpec } from "../cli/load_spec.ts";
import { openLatentCodec } from "../data/latent_codec.ts";
import { latentsOf, readLatents } from "../data/shapes_latents.ts";
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
      // The oracle: the VAE run's own decode entry, compiled by the CLI path, on the same latent.
      const codec = await openLatentCodec(latentsOf(readLatents(f.vaeRun, 8, 4)!));
      try {
        const [expected] = await codec.decode([image.latent!]);
        let worst = 0;
        expected!.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - image.values[k]!))));
        assert.ok(worst < 1e-4, `the module's picture is ${worst} off the VAE's decode of its latent`);
      } finally {
        codec.destroy();
      }
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
      new RegExp(`cannot carry its decoder: .*no VAE run at ${f.vaeRun}`),
    );
  } finally {
    await f.remove();
  }
});
