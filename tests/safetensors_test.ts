import assert from "node:assert/strict";
import type { ParamLayout } from "../compiler/plan.ts";
import { CheckpointError } from "../runtime/file_errors.ts";
import {
  checkAgainstParams,
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
} from "../runtime/safetensors.ts";

const SRC = "runs/x/model.safetensors";

/** A file with `header` as its JSON (unpadded) and `dataBytes` bytes of data counting 0, 1, 2, ... */
function rawFile(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i & 255;
  return out;
}

function headerOf(bytes: Uint8Array): { length: number; json: Record<string, unknown> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) };
}

function throwsCheckpoint(f: () => unknown, message: string | RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${e}`);
    assert.equal(e.name, "CheckpointError");
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

const SAMPLE = new Map<string, SafeTensor>([
  ["b.f32", { dtype: "F32", shape: [2, 3], data: Float32Array.from([1.5, -2, 3.25, 0, 1e-8, -7]) }],
  ["a.f16bits", { dtype: "F16", shape: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff]) }],
  ["c.i32", { dtype: "I32", shape: [2], data: Int32Array.from([-5, 2 ** 31 - 1]) }],
  ["d.u32", { dtype: "U32", shape: [1, 1], data: Uint32Array.from([2 ** 32 - 1]) }],
  ["e.bool", { dtype: "BOOL", shape: [3], data: Uint8Array.from([1, 0, 1]) }],
  ["f.f64", { dtype: "F64", shape: [], data: Float64Array.from([Math.PI]) }],
  ["g.i64", { dtype: "I64", shape: [2], data: BigInt64Array.from([-3n, 2n ** 40n]) }],
  ["h.empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
]);

Deno.test("safetensors round trip", async (t) => {
  const bytes = encodeSafetensors(SAMPLE, { step: "12", note: "ünïcode" });
  await t.step("values, shapes, dtypes and metadata survive", () => {
    const file = decodeSafetensors(bytes, SRC);
    assert.deepEqual(file.metadata, { step: "12", note: "ünïcode" });
    assert.deepEqual([...file.tensors.keys()].sort(), [...SAMPLE.keys()].sort());
    for (const [name, want] of SAMPLE) {
      const got = file.tensors.get(name)!;
      assert.equal(got.dtype, want.dtype, name);
      assert.deepEqual(got.shape, want.shape, name);
      assert.equal(got.data.constructor, want.data.constructor, name);
      assert.deepEqual([...got.data], [...want.data], name);
    }
  });
  await t.step("header is space-padded to 8 bytes and every tensor is aligned to its element size", () => {
    const { length, json } = headerOf(bytes);
    assert.equal(length % 8, 0);
    const sizes: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BOOL: 1 };
    for (const [name, entry] of Object.entries(json)) {
      if (name === "__metadata__") continue;
      const { dtype, data_offsets: [begin] } = entry as { dtype: string; data_offsets: number[] };
      assert.equal(begin! % sizes[dtype]!, 0, `${name} starts at ${begin}`);
    }
  });
  await t.step("a subarray view encodes only its own elements", () => {
    const backing = Float32Array.from([9, 1, 2, 9]);
    const file = decodeSafetensors(
      encodeSafetensors(new Map([["v", { dtype: "F32", shape: [2], data: backing.subarray(1, 3) }]])),
      SRC,
    );
    assert.deepEqual([...file.tensors.get("v")!.data], [1, 2]);
  });
});

/** Python writes a file with struct only: bytes this project did not produce. */
const PY_WRITE = `
import json, struct, sys
w = [0.5 * i - 1 for i in range(6)]
ids = [-(i * 7) for i in range(4)]
data = struct.pack("<6f", *w) + struct.pack("<4i", *ids)
header = {"ids": {"dtype": "I32", "shape": [4], "data_offsets": [24, 40]},
          "w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
          "__metadata__": {"by": "python"}}
h = json.dumps(header).encode()
sys.stdout.buffer.write(struct.pack("<Q", len(h)) + h + data)
`;

/** Python reads our file back with struct only and prints what it found. */
const PY_READ = `
import json, struct, sys
b = sys.stdin.buffer.read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n])
out = {}
for name, e in header.items():
    if name == "__metadata__":
        continue
    lo, hi = e["data_offsets"]
    fmt = {"F32": "f", "I32": "i"}[e["dtype"]]
    out[name] = list(struct.unpack("<%d%s" % ((hi - lo) // 4, fmt), b[8 + n + lo:8 + n + hi]))
print(json.dumps({"metadata": header.get("__metadata__"), "tensors": out}))
`;

async function python(script: string, stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("python3", {
    args: ["-c", script],
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

Deno.test("safetensors interoperate with a reader and writer outside this project", async (t) => {
  await t.step("decodes a file written by python struct/json", async () => {
    const file = decodeSafetensors(await python(PY_WRITE), "py.safetensors");
    assert.deepEqual(file.metadata, { by: "python" });
    assert.deepEqual(file.tensors.get("w")!.shape, [3, 2]);
    assert.deepEqual([...file.tensors.get("w")!.data], [0, 1, 2, 3, 4, 5].map((i) => 0.5 * i - 1));
    assert.deepEqual([...file.tensors.get("ids")!.data], [0, 1, 2, 3].map((i) => -(i * 7) || 0));
  });
  await t.step("python reads the file we write", async () => {
    const tensors = new Map<string, SafeTensor>([
      ["x", { dtype: "F32", shape: [2, 2], data: Float32Array.from([0.25, -1, 8, 3]) }],
      ["n", { dtype: "I32", shape: [3], data: Int32Array.from([-1, 0, 70000]) }],
    ]);
    const read = JSON.parse(
      new TextDecoder().decode(await python(PY_READ, encodeSafetensors(tensors, { k: "v" }))),
    );
    assert.deepEqual(read, { metadata: { k: "v" }, tensors: { x: [0.25, -1, 8, 3], n: [-1, 0, 70000] } });
  });
});

Deno.test("decodeSafetensors rejects bad files with messages naming the file and tensor", async (t) => {
  const good = (extra: Record<string, unknown> = {}) => ({
    w: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    ...extra,
  });
  const cases: [string, Uint8Array, string | RegExp][] = [
    [
      "shorter than the length prefix",
      new Uint8Array(4),
      `${SRC}: file is 4 bytes; a safetensors file starts with an 8-byte header length`,
    ],
    [
      "header length past the end",
      rawFile(good(), 8).subarray(0, 20),
      new RegExp(`^${SRC}: header length \\d+ runs past the end of the 20-byte file \\(truncated, or not`),
    ],
    [
      "header is not JSON",
      (() => {
        const b = rawFile(good(), 8);
        b[8] = "x".charCodeAt(0);
        return b;
      })(),
      new RegExp(`^${SRC}: header is not valid UTF-8 JSON \\(`),
    ],
    ["header is an array", rawFile([1, 2], 0), `${SRC}: header must be a JSON object, got [1,2]`],
    [
      "unknown dtype",
      rawFile({ w: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, 8),
      new RegExp(`^${SRC}: tensor "w": unknown dtype "F33" \\(expected one of F64, F32, F16,`),
    ],
    [
      "negative dim",
      rawFile({ w: { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } }, 8),
      `${SRC}: tensor "w": shape [2,-1] must be an array of non-negative integers`,
    ],
    [
      "fractional dim",
      rawFile({ w: { dtype: "F32", shape: [1.5], data_offsets: [0, 8] } }, 8),
      `${SRC}: tensor "w": shape [1.5] must be an array of non-negative integers`,
    ],
    [
      "offsets not a pair",
      rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, 8),
      `${SRC}: tensor "w": data_offsets [0] must be [begin, end] with non-negative integers`,
    ],
    [
      "offsets reversed",
      rawFile({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, 8),
      `${SRC}: tensor "w": data_offsets [8, 0] end before they begin`,
    ],
    [
      "offsets past the data (a truncated file)",
      rawFile(good(), 6),
      `${SRC}: tensor "w": data_offsets [0, 8] run past the 6-byte data section (truncated file?)`,
    ],
    [
      "size does not match the shape",
      rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8),
      `${SRC}: tensor "w": data_offsets [0, 8] hold 8 bytes, but F32 [3] needs 12`,
    ],
    [
      "overlapping tensors",
      rawFile(good({ u: { dtype: "I32", shape: [1], data_offsets: [4, 8] } }), 8),
      `${SRC}: tensors "w" [0, 8] and "u" [4, 8] overlap`,
    ],
    [
      "metadata value not a string",
      rawFile(good({ __metadata__: { step: 3 } }), 8),
      `${SRC}: __metadata__.step must be a string, got 3`,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    await t.step(name, () => throwsCheckpoint(() => decodeSafetensors(bytes, SRC), message));
  }
  await t.step("every byte-truncation of a real file is rejected", () => {
    const bytes = encodeSafetensors(SAMPLE);
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => decodeSafetensors(bytes.subarray(0, n), SRC), CheckpointError, `truncated to ${n}`);
    }
  });
});

Deno.test("encodeSafetensors rejects data that does not fit the shape", () => {
  const bad = new Map<string, SafeTensor>([["w", {
    dtype: "F32",
    shape: [2, 2],
    data: new Float32Array(3),
  }]]);
  throwsCheckpoint(
    () => encodeSafetensors(bad),
    `encodeSafetensors: tensor "w": data holds 3 elements of 4 bytes, but F32 [2, 2] needs 4 of 4`,
  );
  const wrongWidth = new Map<string, SafeTensor>([["w", {
    dtype: "F32",
    shape: [2],
    data: new Float64Array(2),
  }]]);
  assert.throws(() => encodeSafetensors(wrongWidth), CheckpointError);
});

const layout = (path: string, shape: number[]): ParamLayout => ({
  path,
  shape,
  dtype: "f32",
  offset: 0,
  init: { kind: "zeros" },
  decay: false,
  frozen: false,
});

Deno.test("checkAgainstParams accepts the plan's tensors and lists every mismatch", async (t) => {
  const params = [layout("emb.w", [4, 2]), layout("out.w", [2, 4]), layout("norm.g", [2])];
  const fileOf = (entries: [string, number[]][]) =>
    decodeSafetensors(
      encodeSafetensors(
        new Map(
          entries.map((
            [n, s],
          ) => [n, { dtype: "F32", shape: s, data: new Float32Array(s[0]! * (s[1] ?? 1)) }]),
        ),
      ),
      SRC,
    );
  await t.step("exact match passes, also with prefixes", () => {
    checkAgainstParams(fileOf(params.map((p) => [p.path, [...p.shape]])), params, SRC);
    const moments = params.flatMap((p): [string, number[]][] => [[`m.${p.path}`, [...p.shape]], [
      `v.${p.path}`,
      [...p.shape],
    ]]);
    checkAgainstParams(fileOf(moments), params, SRC, ["m.", "v."]);
  });
  await t.step("a checkpoint of another spec", () => {
    const other = fileOf([["emb.w", [8, 2]], ["out.w", [2, 4]], ["blocks.0.w", [2, 2]]]);
    throwsCheckpoint(
      () => checkAgainstParams(other, params, SRC),
      [
        `${SRC} does not match the spec (a checkpoint of another spec or config?):`,
        "  missing (1): norm.g",
        "  not in the spec (1): blocks.0.w",
        "  different shape or dtype (1): emb.w is F32 [8, 2] in the file, F32 [4, 2] in the spec",
      ].join("\n"),
    );
  });
  await t.step("long lists are cut with a count", () => {
    const many = Array.from({ length: 20 }, (_, i) => layout(`p${i}`, [1]));
    throwsCheckpoint(
      () => checkAgainstParams(fileOf([]), many, SRC),
      /missing \(20\): p0, p1, .*p11, \.\.\. 8 more$/,
    );
  });
});
