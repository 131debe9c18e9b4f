/**
 * The standalone module `deno task compile` writes: it type-checks on its own, ships no compiler or
 * DSL code, loads weights that fit its plan and rejects any that do not (wrong shapes or dtypes, a
 * truncated file, another spec's file) before touching the GPU, and generates images and captions.
 */
import assert from "node:assert/strict";
import demo from "../examples/transfusion_demo.ts";
import tiny from "../examples/tiny.ts";
import { compile } from "../compiler/compile.ts";
import { compileModule, randomWeights } from "../cli/compile.ts";
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from "../runtime/safetensors.ts";
import type { GeneratedModule } from "../runtime/standalone/api.ts";
import { SMALL_DEMO } from "./fixtures/small_demo.ts";
import { resolveConfig } from "../spec/mod.ts";

/** Files of bundled modules: `deno bundle` heads each module's code with a `// path` comment. */
function bundledModules(code: string): string[] {
  return [...code.matchAll(/^\/\/ (\S+\.(?:ts|js|mjs))$/gm)].map((m) => m[1]!);
}

/** Compiler and spec files the runtime may carry: pure functions and data, no passes, no DSL. */
const ALLOWED_COMPILER = ["compiler/philox.ts", "compiler/ir/mask.ts"];
const ALLOWED_SPEC = [
  "spec/layout_builder.ts",
  "spec/transfusion/sequence.ts",
  "spec/transfusion/rows.ts", // row templates: host-side layout data, no tracer
  "spec/transfusion/schedule.ts",
];

type Loaded = GeneratedModule & { readonly CheckpointError: new (...a: never[]) => Error };

Deno.test("generated module", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "module-test-" });
  try {
    const { files, params } = await compileModule(demo, "examples/transfusion_demo.ts", {
      out: dir,
      batch: 2,
      config: SMALL_DEMO,
    });
    const weights = randomWeights(params, 3);
    const weightsPath = `${dir}/model.safetensors`;
    await Deno.writeFile(weightsPath, weights);
    const mod = (await import(new URL(`file://${dir}/mod.ts`).href)) as Loaded;

    await t.step("writes the four files, and mod.ts imports only ./runtime.js", async () => {
      for (const [name, bytes] of Object.entries(files)) {
        assert.equal((await Deno.stat(`${dir}/${name}`)).size, bytes, name);
        assert.ok(bytes > 0, name);
      }
      const source = await Deno.readTextFile(`${dir}/mod.ts`);
      const statements = /^(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms; // not the doc comment's example
      const specifiers = [...source.matchAll(statements)].map((m) => m[1]);
      assert.deepEqual([...new Set(specifiers)], ["./runtime.js"]);
      const runtime = await Deno.readTextFile(`${dir}/runtime.js`);
      // One self-contained bundle: only runtime built-ins (fflate's Node build asks for node:module).
      const imports = [...runtime.matchAll(/^import\b[^;]*?\bfrom\s+"([^"]+)"/gms)].map((m) => m[1]!);
      assert.deepEqual(imports.filter((s) => !s.startsWith("node:")), [], "runtime.js imports files");
    });

    await t.step("the bundle carries no compiler passes and no DSL", async () => {
      const modules = bundledModules(await Deno.readTextFile(`${dir}/runtime.js`));
      for (
        const needed of [
          "runtime/executor.ts",
          "runtime/generate/interleaved.ts",
          "runtime/standalone/entry.ts",
        ]
      ) {
        assert.ok(modules.includes(needed), `${needed} should be bundled; got ${modules.join(", ")}`);
      }
      const compilerCode = modules.filter((m) => m.startsWith("compiler/") && !ALLOWED_COMPILER.includes(m));
      assert.deepEqual(compilerCode, [], "compiler modules in runtime.js");
      const dsl = modules.filter((m) => m.startsWith("spec/") && !ALLOWED_SPEC.includes(m));
      assert.deepEqual(dsl, [], "spec modules in runtime.js");
      assert.deepEqual(modules.filter((m) => m.includes("/zod/")), [], "zod in runtime.js");
    });

    await t.step("mod.ts type-checks on its own (runtime.d.ts ships the types)", async () => {
      const check = await new Deno.Command(Deno.execPath(), {
        args: ["check", "--no-config", "--quiet", `${dir}/mod.ts`],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(check.success, new TextDecoder().decode(check.stderr));
    });

    await t.step("rejects weights that do not fit, naming the tensors", async () => {
      const file = decodeSafetensors(weights, "good");
      const reshaped = new Map<string, SafeTensor>(file.tensors);
      const head = file.tensors.get("head.w")!;
      reshaped.set("head.w", { ...head, shape: [head.shape[1]!, head.shape[0]!] });
      await rejects(
        mod,
        encodeSafetensors(reshaped),
        /head\.w is F32 \[261, 16\] in the file, F32 \[16, 261\]/,
      );

      const retyped = new Map<string, SafeTensor>(file.tensors);
      retyped.set("head.w", { ...head, dtype: "I32", data: new Int32Array(head.data.length) });
      await rejects(mod, encodeSafetensors(retyped), /head\.w is I32/);

      await rejects(mod, weights.slice(0, weights.length - 64), /run past|truncated/);
      await rejects(mod, weights.slice(0, 5), /8-byte header length/);

      const other = randomWeights(compile(tiny, { entries: [] }).params);
      await rejects(
        mod,
        other,
        /missing \(\d+\): embed\.table[\s\S]*not in the spec \(4\): l1\.b, l1\.w, l2\.b, l2\.w/,
      );

      const wider = await compileModule(demo, "examples/transfusion_demo.ts", {
        out: `${dir}/wider`,
        config: { ...SMALL_DEMO, "backbone.dim": 24 },
      });
      await rejects(mod, randomWeights(wider.params), /different shape or dtype[\s\S]*embed\.table/);
      await assert.rejects(() => mod.load(`${dir}/nope.safetensors`), /does not exist/);
    });

    await t.step("loads, generates an image and captions it", async () => {
      const model = await mod.load(weightsPath);
      try {
        assert.equal(model.info.name, "transfusion_demo");
        assert.equal(model.info.batch, 2);
        const spec = resolveConfig(demo.config, SMALL_DEMO, "generated_module_test") as {
          image: { size: number };
        };
        assert.equal(model.info.imageSize, spec.image.size);
        assert.equal(model.info.generation, "cached");
        const request = { prompt: "a handwritten digit 3", steps: 2, maxTokens: 0, seed: 5 };
        const first = await model.generate(request);
        assert.equal(first.images.length, 1);
        const image = first.images[0]!;
        const side = model.info.imageSize; // the demo spec's image.size, through the module's info
        assert.deepEqual([image.width, image.height, image.rgba.length, image.values.length], [
          side,
          side,
          4 * side * side,
          side * side,
        ]);
        assert.ok(image.values.every(Number.isFinite));
        for (let i = 0; i < 64; i++) {
          const gray = image.rgba[4 * i]!;
          assert.ok(Math.abs(gray - ((image.values[i]! + 1) / 2) * 255) <= 0.5 + 1e-3, `pixel ${i}`);
          assert.equal(image.rgba[4 * i + 3], 255);
        }
        const again = await model.generate(request);
        assert.deepEqual(again.images[0]!.values, image.values, "the same seed draws the same image");
        const other = await model.generate({ ...request, seed: 6 });
        assert.notDeepEqual(other.images[0]!.values, image.values, "another seed draws another image");

        // The uncached entries (logits, denoise: whole rows every call) are the oracle of the cached ones.
        const oracle = await compileModule(demo, "examples/transfusion_demo.ts", {
          out: `${dir}/uncached`,
          config: SMALL_DEMO,
          generation: "uncached",
        });
        assert.equal(oracle.files["plan.json"] > 0, true);
        const uncachedMod = (await import(new URL(`file://${dir}/uncached/mod.ts`).href)) as Loaded;
        const uncached = await uncachedMod.load(weights);
        try {
          assert.deepEqual([...uncached.info.entries].sort(), ["denoise", "logits"]);
          assert.equal(uncached.info.generation, "uncached");
          const reference = (await uncached.generate(request)).images[0]!.values;
          const worst = Math.max(...reference.map((v, i) => Math.abs(v - image.values[i]!)));
          assert.ok(worst < 1e-3, `cached vs uncached images differ by up to ${worst}`);
        } finally {
          uncached.close();
        }

        const png = mod.toPng(image, { scale: 3 });
        assert.deepEqual([...png.subarray(1, 4)], [80, 78, 71]); // "PNG"
        const view = new DataView(png.buffer, png.byteOffset);
        assert.deepEqual([view.getUint32(16), view.getUint32(20)], [3 * side, 3 * side]);

        const caption = await model.caption(image);
        assert.equal(typeof caption, "string");
        assert.equal(await model.caption(image), caption, "greedy captions repeat");
        await assert.rejects(
          () => model.caption({ width: 4, height: 4, rgba: new Uint8ClampedArray(64) }),
          new RegExp(`${side}x${side}`),
        );
      } finally {
        model.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function rejects(mod: Loaded, bytes: Uint8Array, message: RegExp): Promise<void> {
  await assert.rejects(() => mod.load(bytes), (e: unknown) => {
    assert.ok(e instanceof mod.CheckpointError, `expected a CheckpointError, got ${e}`);
    assert.match((e as Error).message, message);
    return true;
  });
}
