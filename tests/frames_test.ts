/**
 * The model's own frame (issue 17): which view a run's images take (MNIST digits only where the data
 * says so), frames tiled to PNG by hand-computed bytes, supplied pictures prepared as training
 * pictures are, and the rows text generation builds for a byte-level prefix-LM (no BOS, the prompt
 * as prefix). CPU only: nothing here compiles a model.
 */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { frameFromPicture, frameGrid, frameGridPng, runImageView } from "../runtime/generate/mod.ts";
import { generateText, textFrame, textStepInputs } from "../runtime/generate/mod.ts";
import type { EntryRunner } from "../runtime/generate/sequence_model.ts";
import { encodeRgbPng } from "../runtime/png.ts";
import { ByteTokenizer } from "../runtime/tokenizer.ts";
import { mnistCaptions } from "../data/mnist_captions.ts";
import type { DataSource } from "../spec/data.ts";
import type { AnyModel } from "../spec/model.ts";
import type { TransfusionConfig } from "../spec/transfusion/config.ts";

const SOURCE: DataSource = { tokensPerBatch: 1, batch: () => ({}), describe: () => "test" };

async function viewOf(data: AnyModel["data"], record?: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "frames_view_" });
  try {
    if (record) await Deno.writeTextFile(`${dir}/data.json`, JSON.stringify({ data: record }) + "\n");
    const model = { data } as unknown as AnyModel;
    return await runImageView({ dir, model, config: {} as TransfusionConfig, dims: { batch: 1 } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("image view: digits only where the data declares them; --data runs are frames", async () => {
  assert.equal(await viewOf(() => ({ ...SOURCE, imageView: "digits" })), "digits");
  assert.equal(await viewOf(() => SOURCE), "frame", "a source that declares nothing");
  assert.equal(await viewOf(undefined), "frame", "a spec without data");
  // --data replaced the spec's (MNIST) source: the factory is not even asked.
  const never = () => {
    throw new Error("the spec's data must not be built for a --data run");
  };
  assert.equal(await viewOf(never, "images:./pictures"), "frame");
  assert.equal(await viewOf(() => ({ ...SOURCE, imageView: "digits" }), "jsonl:./p.jsonl"), "frame");
  // A factory that fails here (its files moved) falls back to frames, saying so on stderr.
  assert.equal(await viewOf(never), "frame");
  // MNIST declares digits, so MNIST runs keep the 28x28 digit view.
  const config = {
    seq: 48,
    text: { vocab: 259, captionLength: 16 },
    image: { size: 8, channels: 1, patch: 4, imagesPerRow: 1 },
    diffusion: { condDropout: 0.1 },
  };
  const mnist = mnistCaptions(config as never, { batch: 2, seq: 48 });
  assert.equal(mnist.imageView, "digits");
});

Deno.test("frameGrid: gray and RGB frames on the separator, [-1, 1] to 0..255", () => {
  // One 2x2 gray image: -1 -> 0, 0 -> 128 (127.5 rounded), 1 -> 255, NaN -> 255 (white, visible).
  const gray = frameGrid([Float32Array.of(-1, 0, 1, NaN)], 2, 1, 4);
  assert.deepEqual([gray.width, gray.height, gray.channels], [6, 6, 1]);
  const row = (y: number) => Array.from(gray.pixels.subarray(y * 6, y * 6 + 6));
  assert.deepEqual(row(0), [128, 128, 128, 128, 128, 128]);
  assert.deepEqual(row(2), [128, 128, 0, 128, 128, 128]);
  assert.deepEqual(row(3), [128, 128, 255, 255, 128, 128]);

  // Two 1x1 RGB images side by side: [1, -1, 0] -> (255, 0, 128); NaN red -> magenta's 255.
  const rgb = frameGrid([Float32Array.of(1, -1, 0), Float32Array.of(NaN, NaN, -0.5)], 1, 3, 2);
  assert.deepEqual([rgb.width, rgb.height, rgb.channels], [8, 5, 3]);
  const px = (x: number, y: number) => Array.from(rgb.pixels.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
  assert.deepEqual(px(2, 2), [255, 0, 128]);
  assert.deepEqual(px(5, 2), [255, 0, 64]); // (-0.5 + 1) / 2 * 255 = 63.75
  assert.deepEqual(px(3, 2), [128, 128, 128]);

  // Four channels (a latent): the mean, gray. (1 + 1 - 1 - 1) / 4 = 0 -> 128.
  assert.deepEqual(Array.from(frameGrid([Float32Array.of(1, 1, -1, -1)], 1, 4, 1).pixels), [
    ...Array(5 * 2 + 2).fill(128),
    128,
    ...Array(2 + 5 * 2).fill(128),
  ]);
  assert.throws(() => frameGrid([new Float32Array(3)], 2, 1, 1), /image 0 has 3 values, not 1x2x2/);
});

Deno.test("frameGridPng: colour type 2 for RGB, 0 for gray, the frame's bytes", () => {
  const rgb = decode(frameGridPng([Float32Array.of(1, -1, 0)], 1, 3, 1));
  assert.deepEqual([rgb.width, rgb.height, rgb.channels, rgb.depth], [5, 5, 3, 8]);
  assert.deepEqual(Array.from(rgb.data.subarray((2 * 5 + 2) * 3, (2 * 5 + 2) * 3 + 3)), [255, 0, 128]);
  const gray = decode(frameGridPng([Float32Array.of(-1, 0, 1, 0.5)], 2, 1, 1));
  assert.deepEqual([gray.width, gray.height, gray.channels], [6, 6, 1]);
  assert.deepEqual(Array.from(gray.data.subarray(2 * 6 + 2, 2 * 6 + 4)), [0, 128]);
  assert.deepEqual(Array.from(gray.data.subarray(3 * 6 + 2, 3 * 6 + 4)), [255, 191]); // 0.75 * 255
});

Deno.test("frameFromPicture: the centered square, area-resized, in [-1, 1], gray or RGB", () => {
  // A 4x2 RGB picture: the centered square is columns 1..2.
  const rgb = Uint8Array.of(
    ...[0, 0, 0, 255, 0, 0, 0, 255, 0, 9, 9, 9],
    ...[9, 9, 9, 0, 0, 255, 255, 255, 255, 9, 9, 9],
  );
  const png = encodeRgbPng(rgb, 4, 2);
  const same = frameFromPicture(png, "p.png", 2, 3);
  // Channel planes: R = [255, 0, 0, 255], G = [0, 255, 0, 255], B = [0, 0, 255, 255] as v / 127.5 - 1.
  assert.deepEqual(Array.from(same), [1, -1, -1, 1, -1, 1, -1, 1, -1, -1, 1, 1]);
  // 1x1: the mean of the square: R 510 / 4 = 127.5 -> 0; G likewise; B likewise.
  assert.deepEqual(Array.from(frameFromPicture(png, "p.png", 1, 3)), [0, 0, 0]);
  // Gray: luminance of each pixel (BT.601), e.g. red 0.299 * 255 = 76.245 -> 76.245 / 127.5 - 1.
  const gray = frameFromPicture(png, "p.png", 2, 1);
  assert.ok(Math.abs(gray[0]! - (0.299 * 255 / 127.5 - 1)) < 1e-5, `${gray[0]}`);
  assert.ok(Math.abs(gray[3]! - 1) < 1e-5, `${gray[3]}`);
  assert.throws(() => frameFromPicture(png, "p.png", 2, 4), /p\.png: the model's images have 4 channels/);
  assert.throws(() => frameFromPicture(Uint8Array.of(1, 2, 3), "q.png", 2, 3), /q\.png: not a PNG or JPEG/);
});

Deno.test("text rows: a 256-byte prefix-LM gets no BOS and its prompt as the prefix", async () => {
  const tokenizer = new ByteTokenizer({ pad: true });
  const frame = textFrame(256, ["prefix"], tokenizer.padId);
  assert.deepEqual(frame, { bos: undefined, pad: 0, prefix: true });
  // With BOS and PAD ids in the vocabulary (bytes + specials) and no prefix field: as before.
  assert.deepEqual(textFrame(261, ["doc"], tokenizer.padId), { bos: 256, pad: 260, prefix: false });
  // BOS but no PAD id (vocab 259, PAD is 260): padding takes id 0, as training batches pad.
  assert.deepEqual(textFrame(259, [], tokenizer.padId), { bos: 256, pad: 0, prefix: false });

  const feed = textStepInputs([{ tokens: [97, 98, 61, 99], given: 3 }], 2, 6, ["prefix"], frame);
  assert.deepEqual(Object.keys(feed).sort(), ["layout_prefix", "tokens"]);
  assert.deepEqual(Array.from(feed.tokens!), [97, 98, 61, 99, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(feed.layout_prefix!), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

  // generateText over a stand-in runner: it feeds those rows and continues the prompt.
  const feeds: Record<string, Int32Array>[] = [];
  const runner = {
    plan: {
      model: "stand_in",
      dims: { batch: 1, seq: 6 },
      entries: {
        logits: {
          inputs: [{ name: "tokens", shape: [1, 6] }, { name: "layout_prefix", shape: [1, 6] }],
          outputs: [{ name: "logits", shape: [1, 6, 256] }],
        },
      },
    },
    run: (_: string, inputs: Record<string, Int32Array>) => {
      feeds.push(inputs);
      const logits = new Float32Array(6 * 256);
      for (let t = 0; t < 6; t++) logits[t * 256 + 98] = 1; // always "b"
      return Promise.resolve({ logits });
    },
  } as unknown as EntryRunner;
  const [row] = await generateText(runner, { prompts: [[97, 61]], maxTokens: 2, seed: 0, tokenizer });
  assert.deepEqual(row, { text: "bb", tokens: [98, 98], finish: "budget" });
  assert.deepEqual(Array.from(feeds[1]!.tokens!), [97, 61, 98, 0, 0, 0]);
  assert.deepEqual(Array.from(feeds[1]!.layout_prefix!), [1, 1, 0, 0, 0, 0]);
  await assert.rejects(
    generateText(runner, { prompts: [[]], maxTokens: 2, seed: 0, tokenizer }),
    /prompt 0 is empty and the model has no BOS token \(its vocabulary is 256\)/,
  );
});
