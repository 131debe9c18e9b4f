import assert from "node:assert/strict";
import { zlibSync } from "fflate";
import { ImageError } from "../runtime/file_errors.ts";
import { crc32, decodePng, encodeGrayPng, encodePng } from "../runtime/png.ts";

const SRC = "samples/step_100.png";

/** Deterministic noise with smooth parts, so every filter has something to predict. */
function testImage(width: number, height: number): Uint8Array {
  let state = 12345;
  return Uint8Array.from({ length: width * height * 4 }, (_, i) => {
    state = (state * 1103515245 + 12345) >>> 0;
    return i % 3 === 0 ? (i * 7) & 255 : state >>> 24;
  });
}

function throwsImage(f: () => unknown, message: string | RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ImageError, `expected an ImageError, got ${e}`);
    assert.equal(e.name, "ImageError");
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const body = new Uint8Array([...new TextEncoder().encode(type), ...data]);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body));
  return out;
}

/** A PNG assembled by hand: IHDR fields, then the raw (already filtered) scanlines as IDAT. */
function handmade(width: number, height: number, ihdr: number[], raw: Uint8Array | null): Uint8Array {
  const header = new Uint8Array(13);
  new DataView(header.buffer).setUint32(0, width);
  new DataView(header.buffer).setUint32(4, height);
  header.set(ihdr, 8);
  const parts = [
    Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", header),
    ...(raw ? [chunk("IDAT", zlibSync(raw))] : []),
    chunk("IEND", new Uint8Array(0)),
  ];
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

Deno.test("crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("encodePng round trips through decodePng", async (t) => {
  for (const filter of [0, 1, 2, 3, 4, "adaptive"] as const) {
    await t.step(`filter ${filter}`, () => {
      const rgba = testImage(7, 5);
      const png = encodePng(rgba, 7, 5, filter);
      const image = decodePng(png, SRC);
      assert.equal(image.width, 7);
      assert.equal(image.height, 5);
      assert.deepEqual(image.rgba, rgba);
    });
  }
  await t.step("a 1x1 image", () => {
    const rgba = Uint8Array.from([10, 20, 30, 40]);
    assert.deepEqual(decodePng(encodePng(rgba, 1, 1), SRC).rgba, rgba);
  });
  await t.step("gray: clamped to [0, 1], NaN as black", () => {
    const values = Float32Array.from([0, 0.5, 1, -0.5, 1.7, NaN]);
    const image = decodePng(encodeGrayPng(values, 3, 2), SRC);
    const expected = [0, 128, 255, 0, 255, 0].flatMap((g) => [g, g, g, 255]);
    assert.deepEqual([...image.rgba], expected);
  });
  await t.step("wrong pixel count", () => {
    throwsImage(() => encodePng(new Uint8Array(12), 2, 2), "encodePng: 12 values for 2x2 with 4 channel(s)");
  });
});

/** Channel k of pixel (x, y) in the images python writes. */
const pixel = (x: number, y: number, k: number) => (x * 37 + y * 91 + k * 53 + ((x * y) % 7) * 11) % 256;
const PY_W = 13;
const PY_H = 11;

/**
 * Writes one PNG per color type with zlib and struct only: row y uses filter y % 5, the image
 * data is split over two IDAT chunks and a tEXt chunk sits between them.
 */
const PY_WRITE = `
import struct, sys, zlib
W, H = ${PY_W}, ${PY_H}
def px(x, y, k): return (x * 37 + y * 91 + k * 53 + (x * y) % 7 * 11) % 256
def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
for ct, ch in [(0, 1), (2, 3), (4, 2), (6, 4)]:
    rows = [[px(x, y, k) for x in range(W) for k in range(ch)] for y in range(H)]
    raw = b""
    for y, row in enumerate(rows):
        f = y % 5
        up = rows[y - 1] if y else [0] * len(row)
        out = []
        for i, v in enumerate(row):
            a = row[i - ch] if i >= ch else 0
            b = up[i]
            c = up[i - ch] if i >= ch else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            out.append((v - pred) % 256)
        raw += bytes([f] + out)
    z = zlib.compress(raw, 9)
    png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, ct, 0, 0, 0))
    png += chunk(b"IDAT", z[:len(z) // 2]) + chunk(b"tEXt", b"Comment\\x00made by python")
    png += chunk(b"IDAT", z[len(z) // 2:]) + chunk(b"IEND", b"")
    open("%s/type%d.png" % (sys.argv[1], ct), "wb").write(png)
`;

/** Reads a PNG of ours with python's zlib: checks every CRC, inflates, unfilters, prints RGBA. */
const PY_READ = `
import json, struct, sys, zlib
b = sys.stdin.buffer.read()
assert b[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
pos, idat = 8, b""
while pos < len(b):
    n, t = struct.unpack(">I4s", b[pos:pos + 8])
    d = b[pos + 8:pos + 8 + n]
    assert struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(t + d) & 0xffffffff, t
    if t == b"IHDR": W, H, depth, ct = struct.unpack(">IIBB", d[:10])
    if t == b"IDAT": idat += d
    pos += 12 + n
assert depth == 8 and ct == 6
raw, s, out = zlib.decompress(idat), W * 4, []
for y in range(H):
    f, line = raw[y * (s + 1)], raw[y * (s + 1) + 1:(y + 1) * (s + 1)]
    up = out[(y - 1) * s:y * s] if y else [0] * s
    row = []
    for i in range(s):
        a = row[i - 4] if i >= 4 else 0
        c = up[i - 4] if i >= 4 else 0
        p = a + up[i] - c
        pa, pb, pc = abs(p - a), abs(p - up[i]), abs(p - c)
        paeth = a if pa <= pb and pa <= pc else (up[i] if pb <= pc else c)
        row.append((line[i] + [0, a, up[i], (a + up[i]) // 2, paeth][f]) % 256)
    out += row
print(json.dumps({"width": W, "height": H, "rgba": out}))
`;

async function python(args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("python3", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return stdout;
}

Deno.test("PNGs written and read by python's zlib", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "png_test_" });
  try {
    await python(["-c", PY_WRITE, dir]);
    for (const [colorType, channels] of [[0, 1], [2, 3], [4, 2], [6, 4]] as const) {
      await t.step(`decodes color type ${colorType} with filters 0-4`, async () => {
        const image = decodePng(await Deno.readFile(`${dir}/type${colorType}.png`), `type${colorType}.png`);
        assert.equal(image.width, PY_W);
        assert.equal(image.height, PY_H);
        const expected: number[] = [];
        for (let y = 0; y < PY_H; y++) {
          for (let x = 0; x < PY_W; x++) {
            const c = [0, 1, 2, 3].map((k) => pixel(x, y, Math.min(k, channels - 1)));
            if (channels <= 2) expected.push(c[0]!, c[0]!, c[0]!, channels === 2 ? c[1]! : 255);
            else expected.push(c[0]!, c[1]!, c[2]!, channels === 4 ? c[3]! : 255);
          }
        }
        assert.deepEqual([...image.rgba], expected);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await t.step("python reads what encodePng writes", async () => {
    const rgba = testImage(9, 6);
    const read = JSON.parse(new TextDecoder().decode(await python(["-c", PY_READ], encodePng(rgba, 9, 6))));
    assert.deepEqual(read, { width: 9, height: 6, rgba: [...rgba] });
  });
});

Deno.test("decodePng rejects bad files with messages naming the file", async (t) => {
  const good = encodePng(testImage(4, 3), 4, 3);
  await t.step("not a PNG", () => {
    throwsImage(
      () => decodePng(new TextEncoder().encode("GIF89a......"), SRC),
      `${SRC}: not a PNG file (no PNG signature)`,
    );
  });
  await t.step("every truncation says truncated", () => {
    for (let n = 8; n < good.length; n++) {
      throwsImage(() => decodePng(good.subarray(0, n), SRC), new RegExp(`^${SRC}: truncated: `));
    }
  });
  await t.step("bad CRC", () => {
    const bad = good.slice();
    bad[33 + 8] = bad[33 + 8]! ^ 0xff; // first byte of the IDAT data (the IDAT chunk follows the 25-byte IHDR at 8)
    throwsImage(
      () => decodePng(bad, SRC),
      /^samples\/step_100.png: chunk IDAT at byte 33 has a bad CRC \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/,
    );
  });
  const raw = (rows: number, bytesPerRow: number, filter = 0) =>
    Uint8Array.from(
      { length: rows * (bytesPerRow + 1) },
      (_, i) => (i % (bytesPerRow + 1) === 0 ? filter : i),
    );
  const cases: [string, Uint8Array, string][] = [
    [
      "16-bit depth",
      handmade(2, 2, [16, 6, 0, 0, 0], raw(2, 16)),
      `${SRC}: bit depth 16 is not supported (only 8-bit images)`,
    ],
    [
      "interlaced",
      handmade(2, 2, [8, 6, 0, 0, 1], raw(2, 8)),
      `${SRC}: interlace method 1 is not supported (only non-interlaced images)`,
    ],
    [
      "palette",
      handmade(2, 2, [8, 3, 0, 0, 0], raw(2, 2)),
      `${SRC}: palette images (color type 3) are not supported; use gray, RGB or RGBA`,
    ],
    [
      "invalid color type",
      handmade(2, 2, [8, 5, 0, 0, 0], raw(2, 2)),
      `${SRC}: color type 5 is not a PNG color type`,
    ],
    [
      "unknown filter type",
      handmade(2, 2, [8, 0, 0, 0, 0], raw(2, 2, 7)),
      `${SRC}: row 0 has filter type 7, expected 0 to 4`,
    ],
    [
      "too little image data",
      handmade(3, 3, [8, 2, 0, 0, 0], raw(2, 9)),
      `${SRC}: image data inflates to 20 bytes, 30 expected for 3x3`,
    ],
    ["no image data", handmade(3, 3, [8, 2, 0, 0, 0], null), `${SRC}: no IDAT chunk (no image data)`],
  ];
  for (const [name, bytes, message] of cases) {
    await t.step(name, () => throwsImage(() => decodePng(bytes, SRC), message));
  }
  await t.step("image data that is not zlib", () => {
    const bytes = handmade(1, 1, [8, 0, 0, 0, 0], null);
    const withIdat = new Uint8Array([
      ...bytes.subarray(0, 33),
      ...chunk("IDAT", Uint8Array.from([1, 2, 3, 4])),
      ...bytes.subarray(33),
    ]);
    throwsImage(() => decodePng(withIdat, SRC), new RegExp(`^${SRC}: image data does not inflate \\(`));
  });
});
