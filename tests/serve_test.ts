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
      "-A",
      "examples/serve.ts",
      "--module",
      dir,
      "--weights",
      `${dir}/model.safetensors`,
      "--port",
      "0",
    ],
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
    });
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
