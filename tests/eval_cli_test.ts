/**
 * The sample, caption, eval and demo commands. Bad input (a missing or corrupt run, a file that is
 * not a PNG, a bad flag value) exits 1 with one clear line and leaves every file as it was. Then,
 * on a tiny spec trained for two steps, the whole path runs for real: the demo trains, evaluates
 * and writes its report; sample writes a PNG that decodes; caption prints a caption; eval --json
 * prints one object; guidance runs one denoise call of 2K rows per step, deterministic per seed;
 * the training sample hook draws with the training executor.
 */
import assert from "node:assert/strict";
import { decodePng, encodeGrayPng } from "../runtime/png.ts";
import { generateImages, loadRun, type ModelSession } from "../runtime/generate/mod.ts";
import { testDigits } from "../data/mnist_captions.ts";
import { MNIST_PIXELS } from "../data/mnist.ts";
import { train } from "../runtime/train/mod.ts";
import { transfusionSampleHook } from "../runtime/generate/train_samples.ts";

const decoder = new TextDecoder();

async function cli(script: string, args: readonly string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `cli/${script}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Every file under `dir` with its bytes, so a test can tell nothing was created, changed or removed. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (at: string) => {
    for await (const e of Deno.readDir(at)) {
      const path = `${at}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else files.set(path, (await Deno.readFile(path)).join(","));
    }
  };
  await walk(dir);
  return files;
}

const RUN_JSON = {
  version: 1,
  spec: { path: "examples/t1.ts", name: "t1", hash: "0" },
  config: {},
  dims: { batch: 32, seq: 91 },
  step: 1,
  data: { epoch: 0, index: 1 },
  rng: { seed: 0 },
  metrics: {},
  created: "2025-01-01T00:00:00.000Z",
};

Deno.test("bad input exits 1 with a clear message and touches no file", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "sampler-cli-" });
  const empty = `${tmp}/empty`;
  const corrupt = `${tmp}/corrupt`;
  await Deno.mkdir(empty);
  await Deno.mkdir(`${corrupt}/checkpoint`, { recursive: true });
  await Deno.writeTextFile(`${corrupt}/checkpoint/run.json`, JSON.stringify(RUN_JSON));
  await Deno.writeTextFile(`${corrupt}/checkpoint/model.safetensors`, "definitely not safetensors");
  await Deno.writeTextFile(`${corrupt}/checkpoint/optimizer.safetensors`, "nor this");
  await Deno.writeTextFile(`${tmp}/digit.png`, "hello, I am text");
  await Deno.writeFile(`${tmp}/one-byte.png`, Uint8Array.of(0x89));
  const out = `${tmp}/grid.png`;
  const cases: [string, string[], RegExp][] = [
    ["sample", [`${tmp}/missing`, "--prompt", "3", "--out", out], /run directory .*missing does not exist/],
    ["sample", [empty, "--prompt", "3", "--out", out], /no checkpoint in .*empty/],
    ["sample", [corrupt, "--prompt", "3", "--out", out], /model\.safetensors/],
    [
      "sample",
      [corrupt, "--prompt", "3", "--n", "0", "--out", out],
      /--n must be an integer in 1\.\.1024, got "0"/,
    ],
    [
      "sample",
      [corrupt, "--prompt", "3", "--n", "100000"],
      /--n must be an integer in 1\.\.1024, got "100000"/,
    ],
    ["sample", [corrupt, "--prompt", "3", "--steps", "0"], /--steps must be an integer >= 1, got "0"/],
    ["sample", [corrupt, "--prompt", "3", "--cfg=-2", "--out", out], /--cfg must be a number >= 0, got "-2"/],
    ["sample", [corrupt, "--prompt", "3", "--steps", "many"], /--steps must be an integer >= 1, got "many"/],
    ["sample", [corrupt, "--prompt", "3", "--sampler", "plms"], /--sampler must be one of ddpm, ddim/],
    ["sample", [corrupt, "--prompt", "3", "--out", `${tmp}/grid.jpg`], /--out must name a \.png file/],
    ["sample", [corrupt, "--out", out], /--prompt is required/],
    ["sample", [corrupt, "--prompt", "3", "--bogus"], /unknown flag --bogus for deno task sample/],
    ["caption", [corrupt, "--image", `${tmp}/digit.png`], /digit\.png: not a PNG file/],
    ["caption", [corrupt, "--image", `${tmp}/nope.png`], /--image .*nope\.png: no such file/],
    [
      "caption",
      [corrupt, "--image", `${tmp}/one-byte.png`],
      /one-byte\.png: not a PNG file \(no PNG signature\)/,
    ],
    ["caption", [corrupt, "--image", tmp], /--image .* is a directory/],
    ["caption", [corrupt], /--image is required/],
    ["caption", [empty, "--image", `${tmp}/digit.png`], /not a PNG file/],
    ["eval", [`${tmp}/missing`], /does not exist/],
    ["eval", [corrupt, "--n-per-digit", "0"], /--n-per-digit must be an integer in 1\.\.1000, got "0"/],
    ["eval", [corrupt], /model\.safetensors/],
    ["demo", ["--minutes=-1", "--out", `${tmp}/demo`], /--minutes must be a number >= 0, got "-1"/],
    ["demo", ["--minutes", "0", "--out", `${tmp}/demo`], /--minutes must be > 0/],
    ["demo", ["--steps", "1.5", "--out", `${tmp}/demo`], /--steps must be an integer >= 1, got "1\.5"/],
    ["demo", ["--shipped", `${tmp}/none`, "--out", `${tmp}/demo`], /--shipped .*none: no such directory/],
  ];
  const before = await snapshot(tmp);
  for (const [script, args, message] of cases) {
    await t.step(`${script} ${args.map((a) => a.replace(tmp, "TMP")).join(" ")}`, async () => {
      const r = await cli(script, args);
      assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^error: /);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
      assert.equal(r.stdout, "");
      assert.deepEqual(await snapshot(tmp), before, "files changed");
    });
  }
  await Deno.remove(tmp, { recursive: true });
});

/** A Transfusion spec small enough to compile and run in seconds on a CPU adapter. */
const TINY_SPEC = `import { transfusion } from "../../spec/transfusion/mod.ts";
import { mnistCaptions } from "../../data/mnist_captions.ts";
export default transfusion({
  name: "sampler_cli_tiny",
  backbone: { dim: 16, depth: 1, heads: 2, hidden: 32 },
  text: { vocab: 260, captionLength: 8 },
  image: { size: 16, patch: 4, timestepDim: 16 },
  diffusion: { schedule: "cosine", T: 50, target: "eps", noiseLimit: 25, condDropout: 0.1 },
  batch: 4,
  training: { steps: 2, lr: 1e-3 },
  data: (c, dims) => mnistCaptions(c, dims, { evalBatches: 1 }),
});
`;

Deno.test("tiny run: demo, sample, caption and eval work end to end", async (t) => {
  // The spec must be importable by path from the CLI processes: a scratch folder under runs/.
  const dir = `runs/.sampler-cli-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.writeTextFile(`${dir}/tiny_spec.ts`, TINY_SPEC);
    const demo = `${dir}/demo`;
    const quick = [
      "--n-per-digit",
      "1",
      "--captions",
      "2",
      "--loss-batches",
      "1",
      "--classifier",
      `${dir}/cls`,
    ];
    const classifierSteps = ["--classifier-steps", "5"];

    await t.step("demo trains, evaluates and writes its report", async () => {
      const ok = await cli("demo", [
        "--spec",
        `${dir}/tiny_spec.ts`,
        "--steps",
        "2",
        "--out",
        demo,
        "--sample-steps",
        "2",
        ...quick,
        ...classifierSteps,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /generated-digit accuracy/);
      const html = await Deno.readTextFile(`${demo}/report.html`);
      for (let d = 0; d < 10; d++) {
        assert.ok(html.includes(`samples/digit_${d}.png`));
        const grid = decodePng(await Deno.readFile(`${demo}/samples/digit_${d}.png`), "grid");
        assert.deepEqual([grid.width, grid.height], [28 + 4, 28 + 4]);
      }
      const captions = (await Deno.readTextFile(`${demo}/captions/captions.txt`)).trim().split("\n");
      assert.equal(captions.length, 2);
      const evalJson = JSON.parse(await Deno.readTextFile(`${demo}/eval.json`));
      assert.equal(evalJson.trained.step, 2);
    });

    await t.step("a timed demo prints the adapter, sizes its run and keeps a live grid", async () => {
      const timed = `${dir}/demo_timed`;
      const ok = await cli("demo", [
        "--spec",
        `${dir}/tiny_spec.ts`,
        "--minutes",
        "3",
        "--steps",
        "30",
        "--out",
        timed,
        "--sample-steps",
        "2",
        // The first demo's run stands in for a shipped checkpoint: its samples are the first grid.
        "--shipped",
        `${demo}/run`,
        ...quick,
        ...classifierSteps,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /adapter: .*, (cpu|gpu) class, SIMD width/);
      const first = ok.stdout.indexOf("first samples (the shipped checkpoint's) in");
      assert.ok(first >= 0 && first < ok.stdout.indexOf("captioning"), ok.stdout);
      const sized = ok.stdout.match(/measured \d+ ms\/step on .*: training (\d+) steps/);
      assert.ok(sized, ok.stdout);
      const total = Number(sized[1]);
      assert.ok(total > 11 && total <= 30, `sized to ${total} steps (measured at 11, capped at 30)`);
      const live = decodePng(await Deno.readFile(`${timed}/live.png`), "live.png");
      assert.deepEqual([live.width, live.height], [10 * 28 + 11 * 2, 28 + 4]);
      const evalJson = JSON.parse(await Deno.readTextFile(`${timed}/eval.json`));
      assert.equal(evalJson.trained.step, total, "the sized last step is the one evaluated");
      assert.match(ok.stdout, /the demo took [\d.]+ min of its 3-min budget/);
    });

    await t.step("train --sample-every writes a sample grid per interval and a loss curve", async () => {
      const out = `${dir}/train`;
      const r = await cli("train", [
        `${dir}/tiny_spec.ts`,
        "--steps",
        "2",
        "--sample-every",
        "1",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      for (const step of ["000001", "000002"]) {
        const file = `${out}/samples/step_${step}.png`;
        const grid = decodePng(await Deno.readFile(file), file);
        assert.ok(grid.width > 28 && grid.height >= 28, `${file} is ${grid.width}x${grid.height}`);
      }
      assert.match(await Deno.readTextFile(`${out}/loss.svg`), /<svg[\s\S]*<\/svg>/);
    });

    const run = `${demo}/run`;
    const runFiles = await snapshot(run);

    await t.step("sample writes a PNG grid that decodes; the run is left as it was", async () => {
      const out = `${dir}/grid.png`;
      const r = await cli("sample", [
        run,
        "--prompt",
        "digit 3", // the tiny spec's caption slot holds 8 bytes
        "--n",
        "3",
        "--steps",
        "2",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /wrote .*grid\.png: 3 sample/);
      const png = decodePng(await Deno.readFile(out), out);
      assert.deepEqual([png.width, png.height], [3 * 28 + 4 * 2, 28 + 2 * 2]);
      assert.deepEqual(await snapshot(run), runFiles);
    });

    await t.step(
      "a prompt longer than the caption slot is refused, in bytes; nothing is written",
      async () => {
        for (
          const [prompt, message] of [
            [
              "a handwritten digit 3",
              /"a handwritten digit 3" is 21 bytes of UTF-8, but this model's caption slot holds 8/,
            ],
            [
              "数字三",
              /"数字三" is 9 bytes of UTF-8 \(3 characters; each non-ASCII one takes 2 to 4 bytes\)/,
            ],
          ] as const
        ) {
          const r = await cli("sample", [
            run,
            "--prompt",
            prompt,
            "--n",
            "1",
            "--steps",
            "1",
            "--out",
            `${dir}/no.png`,
          ]);
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, message);
          assert.doesNotMatch(r.stderr, /\n\s+at /);
          assert.ok(!(await Deno.stat(`${dir}/no.png`).then(() => true, () => false)), "no file written");
        }
        assert.deepEqual(await snapshot(run), runFiles);
      },
    );

    await t.step("caption prints one caption per image", async () => {
      const test = testDigits();
      const png = `${dir}/digit.png`;
      await Deno.writeFile(png, encodeGrayPng(test.images.slice(0, MNIST_PIXELS), 28, 28));
      const r = await cli("caption", [run, "--image", png, "--image", png]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 2);
      assert.ok(lines.every((l) => l.startsWith(`${png}: `)));
      assert.equal(lines[0], lines[1], "greedy decoding of the same image is the same caption");
    });

    await t.step("eval --json prints one object with the three figures", async () => {
      const r = await cli("eval", [
        run,
        "--json",
        "--steps",
        "2",
        "--train-captions",
        "3",
        ...quick,
        ...classifierSteps,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout);
      assert.equal(result.trainCaptioning.count, 3, "--train-captions also captions training digits");
      const [lo, hi] = result.trainCaptioning.interval95;
      assert.ok(lo <= result.trainCaptioning.accuracy && result.trainCaptioning.accuracy <= hi);
      assert.match(r.stderr, /captioning 3 training digits/);
      assert.ok(result.generation.accuracy >= 0 && result.generation.accuracy <= 1);
      assert.equal(result.generation.perDigit.length, 10);
      assert.ok(result.classifier.testAccuracy > 0);
      assert.equal(result.captioning.count, 2);
      assert.equal(result.heldOut.batches, 1);
      assert.ok(Number.isFinite(result.heldOut.values.loss));
      assert.deepEqual(await snapshot(run), runFiles);
    });

    await t.step(
      "guidance: one denoise call of 2K rows per step; the same seed gives the same images",
      async () => {
        const loaded = await loadRun(run);
        try {
          const calls: number[] = [];
          const counting: ModelSession = {
            config: loaded.config,
            entry: async (name, rows) => {
              const got = await loaded.entry(name, rows);
              const executor = Object.create(got.executor);
              executor.run = (entry: string, inputs: Record<string, ArrayLike<number>>) => {
                calls.push(inputs.x_t!.length / (16 * 16));
                return got.executor.run(entry, inputs);
              };
              return { executor, batch: got.batch };
            },
          };
          const prompts = ["3", "5", "7"];
          const a = await generateImages(counting, prompts, { steps: 4, cfg: 3, seed: 9 });
          assert.deepEqual(calls, [6, 6, 6, 6]);
          const uncached: ModelSession = { config: loaded.config, entry: loaded.entry };
          const b = await generateImages(uncached, prompts, { steps: 4, cfg: 3, seed: 9 });
          assert.deepEqual(a, b);
          const c = await generateImages(uncached, prompts, { steps: 4, cfg: 3, seed: 10 });
          assert.notDeepEqual(a, c);
          // The KV-cached sampler (prefill once, then the patches per step) draws the same images.
          assert.ok(loaded.cached, "a loaded Transfusion run has the cached entries");
          const d = await generateImages(loaded, prompts, { steps: 4, cfg: 3, seed: 9 });
          const { executor: cachedExecutor } = await loaded.cached(6);
          const spans = cachedExecutor.plan.entries.denoise_span!.steps[0]!;
          assert.ok(spans.kind === "dispatch" && cachedExecutor.dispatchCounts()[spans.kernel]! >= 4);
          const worst = Math.max(...d.flatMap((img, i) => [...img].map((v, j) => Math.abs(v - a[i]![j]!))));
          assert.ok(worst <= 1e-3, `cached and uncached images differ by ${worst}`);
          assert.deepEqual(await generateImages(loaded, prompts, { steps: 4, cfg: 3, seed: 9 }), d);
          calls.length = 0;
          await generateImages(counting, prompts, { steps: 2, cfg: 1, seed: 9 });
          assert.deepEqual(calls, [3, 3]);
        } finally {
          loaded.destroy();
        }
      },
    );

    await t.step("an open executor with room for more rows runs fuller chunks, same images", async () => {
      const loaded = await loadRun(run);
      try {
        // 34 guided prompts are 2 chunks of 17 (68 rows needed, 34 asked for); an open 68-row
        // executor is reused for 34 rows (run.ts), and then one chunk of 34 fills it.
        const prompts = Array.from({ length: 34 }, (_, i) => String(i % 10));
        const { executor } = await loaded.cached!(68);
        const span = executor.plan.entries.denoise_span!.steps[0]!;
        assert.ok(span.kind === "dispatch");
        const before = executor.dispatchCounts()[span.kernel]!;
        const full = await generateImages(loaded, prompts, { steps: 2, cfg: 3, seed: 4 });
        assert.equal(executor.dispatchCounts()[span.kernel]! - before, 2, "one chunk: a dispatch per step");
        const chunked = await generateImages(loaded, prompts, { steps: 2, cfg: 3, seed: 4, chunk: 17 });
        assert.equal(executor.dispatchCounts()[span.kernel]! - before, 2 + 4, "an explicit chunk is kept");
        const worst = Math.max(
          ...full.flatMap((img, i) => [...img].map((v, j) => Math.abs(v - chunked[i]![j]!))),
        );
        assert.ok(worst <= 1e-5, `chunking changed the images by ${worst}`);
      } finally {
        loaded.destroy();
      }
    });

    await t.step("train --ema: sample and eval use the moving average unless --weights raw", async () => {
      const out = `${dir}/ema`;
      const r = await cli("train", [
        `${dir}/tiny_spec.ts`,
        "--steps",
        "2",
        "--ema",
        "0.5",
        "--ema-every",
        "1",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const [averaged, raw] = [await loadRun(out), await loadRun(out, { weights: "raw" })];
      try {
        assert.deepEqual([averaged.weights, raw.weights], ["ema", "raw"]);
        const a = await generateImages(averaged, ["3"], { steps: 2, cfg: 1, seed: 1 });
        const b = await generateImages(raw, ["3"], { steps: 2, cfg: 1, seed: 1 });
        assert.notDeepEqual(a, b, "the two sets of weights draw different images");
      } finally {
        averaged.destroy();
        raw.destroy();
      }
      const plain = await loadRun(run);
      plain.destroy();
      assert.equal(plain.weights, "raw", "a run without ema.safetensors runs its raw weights");
      await assert.rejects(loadRun(run, { weights: "ema" }), /has no ema\.safetensors .*use --weights raw/);
      const bad = await cli("eval", [out, "--weights", "avg"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /--weights must be one of ema, raw, got "avg"/);
      const json = await cli("eval", [out, "--json", "--steps", "2", ...quick, ...classifierSteps]);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(JSON.parse(json.stdout).weights, "ema");
    });

    await t.step("the training sample hook writes one image per digit", async () => {
      const spec = (await import(`../${dir}/tiny_spec.ts`)).default;
      const out = `${dir}/hooked`;
      await train({
        model: spec,
        specPath: `${dir}/tiny_spec.ts`,
        out,
        settings: { steps: 1, sampleEvery: 1 },
        sampleHook: transfusionSampleHook,
      });
      const png = decodePng(await Deno.readFile(`${out}/samples/step_000001.png`), "samples");
      assert.deepEqual([png.width, png.height], [10 * 28 + 11 * 2, 28 + 2 * 2]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
