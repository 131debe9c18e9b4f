/**
 * examples/serve.ts end to end: compile the demo spec small into a temp module, write untrained
 * weights, start the server on a free port, and fetch a PNG for a prompt. The PNG is read with
 * fflate alone (signature, IHDR size, inflated scanlines), not with the encoder that wrote it.
 */
import assert from "node:assert/strict";
import { unzlibSync } from "fflate";
import demo from "../examples/transfusion_demo.ts";
import { compileModule, randomWeights } from "../cli/compile.ts";
import { SMALL_DEMO } from "./fixtures/small_demo.ts";
import { resolveConfig } from "../spec/mod.ts";
import { gpuEnv } from "../runtime/gpu_env.ts";

/** The demo spec's image side, as the server's model sees it. */
const demoImageSize =
  (resolveConfig(demo.config, SMALL_DEMO, "serve_test") as { image: { size: number } }).image
    .size;

/** Width, height, color type and the inflated scanline bytes of a PNG. */
function readPng(bytes: Uint8Array): { width: number; height: number; colorType: number; raw: Uint8Array } {
  assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = (at: number) => new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
  assert.equal(type(8), "IHDR");
  const [width, height, colorType] = [view.getUint32(16), view.getUint32(20), bytes[25]!];
  const idat: Uint8Array[] = [];
  let at = 8;
  while (at < bytes.length && type(at) !== "IEND") {
    const length = view.getUint32(at);
    if (type(at) === "IDAT") idat.push(bytes.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  assert.equal(type(at), "IEND");
  const joined = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  idat.reduce((o, c) => (joined.set(c, o), o + c.length), 0);
  return { width, height, colorType, raw: unzlibSync(joined) };
}

/** The resident set of process `pid` in KiB (Linux /proc); 0 where there is no /proc. */
function residentKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Lines of `stream` until one matches `pattern`; returns the match. */
async function waitForLine(stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<RegExpMatchArray> {
  let seen = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    seen += chunk;
    const m = seen.match(pattern);
    if (m) return m;
  }
  throw new Error(`the server exited without printing ${pattern}; it printed:\n${seen}`);
}

Deno.test("serve: GET /generate returns a PNG of the prompt's image", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "serve-test-" });
  const { params } = await compileModule(demo, "examples/transfusion_demo.ts", {
    out: dir,
    config: SMALL_DEMO,
  });
  await Deno.writeFile(`${dir}/model.safetensors`, randomWeights(params, 1));
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // The narrowest permissions that work (examples/serve.ts says why each is there), not -A.
      `--allow-read=${dir}`,
      "--allow-net=127.0.0.1",
      "--allow-env=PORT,DENO_WEBGPU_BACKEND,XDG_RUNTIME_DIR,TMPDIR",
      "--allow-sys=uid",
      "examples/serve.ts",
      "--module",
      dir,
      "--weights",
      `${dir}/model.safetensors`,
      "--port",
      "0",
    ],
    // The server may not write (no private XDG_RUNTIME_DIR of its own): it gets ours.
    env: gpuEnv(),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const [, base] = await waitForLine(server.stdout, /listening on (http:\/\/\S+\/)/);

    await t.step("a prompt gives a decodable PNG at the asked scale", async () => {
      const url = `${base}generate?prompt=${
        encodeURIComponent("a handwritten digit 7")
      }&steps=2&seed=3&scale=4`;
      const response = await fetch(url);
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(response.headers.get("content-type"), "image/png");
      const png = readPng(new Uint8Array(await response.arrayBuffer()));
      const side = 4 * demoImageSize; // the model image, x4
      assert.deepEqual([png.width, png.height, png.colorType], [side, side, 6]); // RGBA
      assert.equal(png.raw.length, side * (1 + side * 4), "one filter byte + RGBA per row");
    });

    await t.step("the same seed gives the same bytes", async () => {
      const url = `${base}generate?prompt=three&steps=2&seed=9&scale=1`;
      const [a, b] = [await (await fetch(url)).arrayBuffer(), await (await fetch(url)).arrayBuffer()];
      assert.deepEqual(new Uint8Array(a), new Uint8Array(b));
      assert.deepEqual([readPng(new Uint8Array(a)).width], [demoImageSize]);
    });

    await t.step("bad requests are 400s with the reason", async () => {
      const missing = await fetch(`${base}generate`);
      assert.equal(missing.status, 400);
      assert.match(await missing.text(), /prompt/);
      const steps = await fetch(`${base}generate?prompt=x&steps=0`);
      assert.equal(steps.status, 400);
      assert.match(await steps.text(), /steps/);
      const tooMany = await fetch(`${base}generate?prompt=x&steps=51`); // T = 50
      assert.equal(tooMany.status, 400);
      assert.match(await tooMany.text(), /1\.\.50/);
      const unknown = await fetch(`${base}nope`);
      assert.equal(unknown.status, 404);
      await unknown.body?.cancel();
      const cases: [string, RegExp][] = [
        ["prompt=x&stepz=2", /unknown parameter "stepz"; \/generate takes prompt, steps, guidance/],
        ["prompt=x&steps=2&steps=3", /steps is given 2 times/],
        ["prompt=x&steps=-1", /steps must be an integer in 1\.\.1000, got "-1"/],
        ["prompt=x&steps=2.5", /steps must be an integer/],
        ["prompt=x&guidance=-1", /guidance must be a number in 0\.\.100, got "-1"/],
        ["prompt=x&guidance=NaN", /guidance must be a number/],
        ["prompt=x&seed=-1", /seed must be an integer in 0\.\.4294967295/],
        ["prompt=x&scale=0", /scale must be an integer in 1\.\.64, got "0"/],
        ["prompt=x&scale=1e9", /scale must be an integer in 1\.\.64/],
        ["prompt=x&sampler=plms", /sampler must be one of ddpm, ddim, euler, heun, got "plms"/],
        [`prompt=${"a".repeat(5000)}`, /is 5000 bytes of UTF-8, but this model's caption slot holds 22/],
        [
          `prompt=${encodeURIComponent("数字三の手書き画像です")}`,
          /is 33 bytes of UTF-8 \(11 characters; each non-ASCII/,
        ],
      ];
      for (const [query, reason] of cases) {
        const response = await fetch(`${base}generate?${query}`);
        const text = await response.text();
        assert.equal(response.status, 400, `${query.slice(0, 40)}: ${text}`);
        assert.match(text, reason);
      }
      const post = await fetch(`${base}generate?prompt=x`, { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    });

    await t.step("a non-ASCII prompt that fits the caption slot draws an image", async () => {
      const response = await fetch(`${base}generate?prompt=${encodeURIComponent("数字 3")}&steps=1&scale=1`);
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(readPng(new Uint8Array(await response.arrayBuffer())).width, demoImageSize);
    });

    await t.step("load: 60 requests, 20 at a time, all answered right; memory stays flat", async () => {
      // A third draw (1 step, no guidance: one row), the rest are refusals; every response is checked.
      const query = (i: number) =>
        i % 3 === 0 ? `prompt=load&steps=1&guidance=0&scale=1&seed=${i}` : `prompt=load&steps=0&seed=${i}`;
      const fire = async (i: number) => {
        const response = await fetch(`${base}generate?${query(i)}`);
        const body = new Uint8Array(await response.arrayBuffer());
        return { i, status: response.status, body };
      };
      const round = async () => {
        const results: Awaited<ReturnType<typeof fire>>[] = [];
        for (let start = 0; start < 60; start += 20) {
          results.push(...await Promise.all(Array.from({ length: 20 }, (_, k) => fire(start + k))));
        }
        return results;
      };
      const rss = () => residentKiB(server.pid);
      const warm = await round();
      const before = rss();
      const again = await round();
      const after = rss();
      for (const r of [...warm, ...again]) {
        if (r.i % 3 === 0) {
          assert.equal(r.status, 200, new TextDecoder().decode(r.body));
          assert.equal(readPng(r.body).width, demoImageSize);
        } else {
          assert.equal(r.status, 400);
          assert.match(new TextDecoder().decode(r.body), /steps must be an integer/);
        }
      }
      // Concurrency changes nothing: each seed gives the bytes it gave the first time.
      warm.forEach((r, k) => assert.deepEqual(again[k]!.body, r.body, `request ${r.i}`));
      // 60 more requests may not grow the server by more than 64 MiB (no per-request leak of buffers).
      assert.ok(after - before < 64 * 1024, `resident memory ${before} KiB -> ${after} KiB`);
      console.log(`serve load: 2 x 60 requests (20 at a time); server RSS ${before} KiB -> ${after} KiB`);
    });
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
