/**
 * `deno task sample` on a run trained on VAE latents writes the VAE's pictures of the latents it
 * generated: RGB at the VAE's pixel size, each pixel what the VAE run's decode entry makes of the
 * same latents (drawn again here with the same seed), not the latents' channel means; and with the
 * VAE run gone it fails naming the VAE run's folder, before writing anything.
 */
import assert from "node:assert/strict";
import { decodePng } from "../runtime/png.ts";
import { generateImages, loadRun } from "../runtime/generate/mod.ts";
import { openLatentCodec, runLatents } from "../data/latent_codec.ts";
import { latentFixture } from "./fixtures/latent_runs.ts";

const text = new TextDecoder();
const sample = (run: string, out: string) =>
  new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "cli/sample.ts",
      run,
      "--prompt",
      "a red circle",
      "--n",
      "2",
      "--steps",
      "2",
      "--cfg",
      "0",
      "--out",
      out,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();

/** [-1, 1] to a byte, as runtime/generate/frames.ts writes pixels. */
const byte = (v: number) => Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);

Deno.test("sample on a latent run writes the VAE's decoded RGB pictures of the sampled latents", async () => {
  const f = await latentFixture("latent-sample-test", true);
  try {
    const out = `${f.dir}/samples.png`;
    const result = await sample(f.latentRun, out);
    assert.equal(result.code, 0, text.decode(result.stderr));
    assert.match(
      text.decode(result.stdout),
      new RegExp(`2x8x8 latents decoded by the VAE run ${f.vaeRun} .*to 32x32x3 pixels`),
    );
    const bytes = await Deno.readFile(out);
    assert.equal(bytes[25], 2, "PNG colour type 2 (RGB)");
    const grid = decodePng(bytes, out);
    assert.deepEqual([grid.width, grid.height], [2 * 32 + 3 * 2, 32 + 2 * 2]);

    // The same latents again (same seed), through the VAE's decode entry.
    const run = await loadRun(f.latentRun);
    let pictures: Float32Array[];
    try {
      const latents = await generateImages(run, ["a red circle", "a red circle"], {
        method: "ddim",
        steps: 2,
        cfg: 0,
        seed: 0,
      });
      assert.equal(latents[0]!.length, 2 * 8 * 8);
      const codec = await openLatentCodec(runLatents(run)!);
      try {
        pictures = await codec.decode(latents);
      } finally {
        codec.destroy();
      }
    } finally {
      run.destroy();
    }
    let worst = 0, spread = 0;
    pictures.forEach((p, n) => {
      assert.equal(p.length, 3 * 32 * 32);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const at = ((2 + y) * grid.width + 2 + n * 34 + x) * 4;
          for (let c = 0; c < 3; c++) {
            worst = Math.max(worst, Math.abs(grid.rgba[at + c]! - byte(p[c * 1024 + y * 32 + x]!)));
          }
          spread = Math.max(spread, Math.abs(grid.rgba[at]! - grid.rgba[at + 2]!));
        }
      }
    });
    assert.ok(worst <= 1, `a written pixel is ${worst}/255 off the decoded picture`);
    // Channel means would be gray: an untrained decoder's pictures still differ between channels.
    assert.ok(spread > 0, "every written pixel is gray");

    // generate writes each drawn image decoded too: row 0 of the same prompt and seed draws sample 0.
    const gen = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/generate.ts",
        f.latentRun,
        "--prompt",
        "a red circle",
        "--steps",
        "2",
        "--cfg",
        "0",
        "--scale",
        "1",
        "--out",
        `${f.dir}/gen`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(gen.code, 0, text.decode(gen.stderr));
    assert.match(text.decode(gen.stdout), /images: 2x8x8 latents decoded by the VAE run/);
    const drawn = decodePng(await Deno.readFile(`${f.dir}/gen/image1.png`), "image1.png");
    assert.deepEqual([drawn.width, drawn.height], [32, 32]);
    let genWorst = 0;
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) {
        genWorst = Math.max(genWorst, Math.abs(drawn.rgba[p * 4 + c]! - byte(pictures[0]![c * 1024 + p]!)));
      }
    }
    assert.ok(genWorst <= 1, `generate's picture is ${genWorst}/255 off the decoded sample`);

    // caption reads a picture as the model was trained: encoded by the VAE.
    const caption = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/caption.ts", f.latentRun, "--image", out],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(caption.code, 0, text.decode(caption.stderr));
    assert.match(
      text.decode(caption.stderr),
      new RegExp(`encoded 1 picture\\(s\\) at 32x32 with the encode entry of the VAE run ${f.vaeRun}`),
    );

    // Without the VAE run nothing can decode the latents: a clear error, nothing written.
    await Deno.remove(f.vaeRun, { recursive: true });
    const missing = await sample(f.latentRun, `${f.dir}/none.png`);
    assert.notEqual(missing.code, 0);
    assert.match(text.decode(missing.stderr), new RegExp(`no VAE run at ${f.vaeRun}`));
    await assert.rejects(Deno.stat(`${f.dir}/none.png`), Deno.errors.NotFound);
  } finally {
    await f.remove();
  }
});
