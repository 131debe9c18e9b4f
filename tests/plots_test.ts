import assert from "node:assert/strict";
import { imageGrid, lossCurveSvg, type Series } from "../runtime/plots.ts";
import { decodePng, encodePng } from "../runtime/png.ts";

interface ParsedSvg {
  polylines: [number, number][][];
  texts: string[];
  width: number;
  height: number;
}

/**
 * Parses SVGs with python's XML parser (a reader we did not write) and pulls out what we check;
 * one python run for all of them, as starting python is the slow part.
 */
async function parseSvgs<K extends string>(svgs: Record<K, string>): Promise<Record<K, ParsedSvg>> {
  const script = `
import json, sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
def parse(svg):
    root = ET.fromstring(svg)
    assert root.tag == ns + "svg", root.tag
    lines = [[[float(v) for v in p.split(",")] for p in e.get("points").split()] for e in root.iter(ns + "polyline")]
    texts = [e.text for e in root.iter(ns + "text")]
    return {"polylines": lines, "texts": texts, "width": int(root.get("width")), "height": int(root.get("height"))}
print(json.dumps({k: parse(v) for k, v in json.load(sys.stdin).items()}))
`;
  const child = new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(svgs)));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

const train: Series = { name: "train <loss> & co", points: [[0, 2.3], [100, 1.1], [200, NaN], [300, 0.4]] };
const val: Series = { name: "val", points: [[0, 2.5], [300, 0.6]] };
const noisy: [number, number][] = Array.from(
  { length: 100_000 },
  (_, i) => [i, 1 + ((i * 7919) % 1000) / 1000],
);
noisy[50_000] = [50_000, 10];
noisy[99_999] = [99_999, 1];
/** What `noisy` must look like at its extremes: the same axes, only the extreme points. */
const envelope: [number, number][] = [[0, 1], [50_000, 10], [99_999, 1]];

const SVGS = {
  main: lossCurveSvg([train, val], { title: "t1", width: 640, height: 400 }),
  log: lossCurveSvg([{ name: "loss", points: [[0, 1], [1, 0.1], [2, 0.01], [3, 0], [4, -1]] }], {
    logY: true,
  }),
  empty: lossCurveSvg([{ name: "empty", points: [] }]),
  noisy: lossCurveSvg([{ name: "n", points: noisy }]),
  envelope: lossCurveSvg([{ name: "n", points: envelope }]),
};
let parsed: Promise<Record<keyof typeof SVGS, ParsedSvg>> | undefined;
const svgs = () => parsed ??= parseSvgs(SVGS);

const ys = (line: [number, number][]) => line.map((p) => p[1]);
const xs = (line: [number, number][]) => line.map((p) => p[0]);
const isIncreasing = (v: number[]) => v.every((x, i) => i === 0 || x > v[i - 1]!);

Deno.test("lossCurveSvg draws each series inside the plot with axes and a legend", async (t) => {
  const svg = (await svgs()).main;
  await t.step("one polyline per series; non-finite points skipped", () => {
    assert.equal(svg.polylines.length, 2);
    assert.equal(svg.polylines[0]!.length, 3);
    assert.equal(svg.polylines[1]!.length, 2);
  });
  await t.step("steps go right, falling loss goes down the page (SVG y grows downward)", () => {
    for (const line of svg.polylines) {
      assert.ok(isIncreasing(xs(line)), String(xs(line)));
      assert.ok(isIncreasing(ys(line)), String(ys(line)));
      for (const [x, y] of line) {
        assert.ok(x >= 0 && x <= svg.width && y >= 0 && y <= svg.height, `${x},${y}`);
      }
    }
  });
  await t.step("same value, same height: val starts below train's start", () => {
    assert.ok(svg.polylines[1]![0]![1] < svg.polylines[0]![0]![1]);
  });
  await t.step("title, escaped legend names, axis labels and round ticks", () => {
    for (const text of ["t1", "train <loss> & co", "val", "step", "loss"]) {
      assert.ok(svg.texts.includes(text), text);
    }
    // Steps 0..300 tick every 50; losses 0.4..2.5 every 0.5 (1-2-5 steps, about six ticks per axis).
    for (const tick of ["0", "50", "300", "0.5", "2.5"]) {
      assert.ok(svg.texts.includes(tick), `${tick} in ${svg.texts}`);
    }
    assert.ok(!svg.texts.includes("0.35"));
  });
});

Deno.test("lossCurveSvg log scale spaces decades evenly and skips non-positive values", async () => {
  const svg = (await svgs()).log;
  const line = svg.polylines[0]!;
  assert.equal(line.length, 3);
  const [a, b, c] = ys(line) as [number, number, number];
  assert.ok(Math.abs((b - a) - (c - b)) < 0.2, `${a} ${b} ${c}`);
  for (const tick of ["0.01", "0.1", "1", "loss (log)"]) {
    assert.ok(svg.texts.includes(tick), String(svg.texts));
  }
});

Deno.test("lossCurveSvg of no data is still a valid picture", async () => {
  const svg = (await svgs()).empty;
  assert.ok(svg.texts.includes("no data"));
});

Deno.test("lossCurveSvg thins long runs but keeps their extremes", async () => {
  const { noisy: full, envelope: sparse } = await svgs();
  const line = full.polylines[0]!;
  assert.ok(line.length < 4 * full.width, `${line.length} points`);
  assert.equal(Math.min(...ys(line)), Math.min(...ys(sparse.polylines[0]!)));
  assert.equal(Math.max(...ys(line)), Math.max(...ys(sparse.polylines[0]!)));
});

Deno.test("imageGrid tiles images with separators", async (t) => {
  const [w, h] = [3, 2];
  const images = Array.from(
    { length: 5 },
    (_, i) => Float32Array.from({ length: w * h }, (_, j) => (i + j) / 5 - 1),
  );
  const grid = imageGrid(images, w, h, 2, { separator: 1, separatorColor: [0, 0, 200] });
  const at = (
    x: number,
    y: number,
  ) => [...grid.rgba.subarray((y * grid.width + x) * 4, (y * grid.width + x) * 4 + 4)];
  await t.step("size: cells plus a separator between and around them", () => {
    assert.equal(grid.width, 2 * w + 3);
    assert.equal(grid.height, 3 * h + 4);
  });
  await t.step("pixels map [-1, 1] to [0, 255] in their cell", () => {
    images.forEach((img, i) => {
      const [x0, y0] = [1 + (i % 2) * (w + 1), 1 + Math.floor(i / 2) * (h + 1)];
      for (let j = 0; j < w * h; j++) {
        const g = Math.round(((img[j]! + 1) / 2) * 255);
        assert.deepEqual(at(x0 + (j % w), y0 + Math.floor(j / w)), [g, g, g, 255], `image ${i} pixel ${j}`);
      }
    });
  });
  await t.step("separators and the empty last cell are separator-colored", () => {
    for (let y = 0; y < grid.height; y++) assert.deepEqual(at(0, y), [0, 0, 200, 255]);
    for (let x = 0; x < grid.width; x++) assert.deepEqual(at(x, h + 1), [0, 0, 200, 255]);
    assert.deepEqual(at(w + 2, 2 * (h + 1) + 1), [0, 0, 200, 255]);
  });
  await t.step("unit range, NaN shown magenta, and the grid encodes to a PNG", () => {
    const g = imageGrid([Float32Array.from([0, 0.5, 1, NaN])], 2, 2, 4, { range: "unit" });
    assert.equal(g.width, 2 + 2 * 2);
    const png = decodePng(encodePng(g.rgba, g.width, g.height), "grid.png");
    const inner = [0, 1].flatMap((y) =>
      [0, 1].map((x) => [...png.rgba.subarray(((y + 2) * g.width + x + 2) * 4).slice(0, 4)])
    );
    assert.deepEqual(inner, [[0, 0, 0, 255], [128, 128, 128, 255], [255, 255, 255, 255], [255, 0, 255, 255]]);
  });
  await t.step("a wrongly sized image is named", () => {
    assert.throws(
      () => imageGrid([new Float32Array(6), new Float32Array(5)], 3, 2, 2),
      /image 1 has 5 values, 3x2 needs 6/,
    );
  });
});
