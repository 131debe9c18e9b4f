/**
 * The safetensors format, so checkpoints load in other tools: an 8-byte little-endian header length
 * N, N bytes of JSON header (space-padded to a multiple of 8), then the raw little-endian data.
 * `decodeSafetensors` trusts nothing in the file: every failure names the file and the tensor.
 */
import type { DType } from "../compiler/ir/dtype.ts";
import type { ParamLayout } from "../compiler/plan.ts";
import { CheckpointError } from "./file_errors.ts";

export type SafeDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "F8_E4M3"
  | "F8_E5M2"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Bytes per element, and the array each dtype decodes to (16- and 8-bit floats stay raw bits). */
const DTYPES: { readonly [D in SafeDType]: { bytes: number; array: (b: ArrayBuffer) => TensorData } } = {
  F64: { bytes: 8, array: (b) => new Float64Array(b) },
  F32: { bytes: 4, array: (b) => new Float32Array(b) },
  F16: { bytes: 2, array: (b) => new Uint16Array(b) },
  BF16: { bytes: 2, array: (b) => new Uint16Array(b) },
  F8_E4M3: { bytes: 1, array: (b) => new Uint8Array(b) },
  F8_E5M2: { bytes: 1, array: (b) => new Uint8Array(b) },
  I64: { bytes: 8, array: (b) => new BigInt64Array(b) },
  I32: { bytes: 4, array: (b) => new Int32Array(b) },
  I16: { bytes: 2, array: (b) => new Int16Array(b) },
  I8: { bytes: 1, array: (b) => new Int8Array(b) },
  U64: { bytes: 8, array: (b) => new BigUint64Array(b) },
  U32: { bytes: 4, array: (b) => new Uint32Array(b) },
  U16: { bytes: 2, array: (b) => new Uint16Array(b) },
  U8: { bytes: 1, array: (b) => new Uint8Array(b) },
  BOOL: { bytes: 1, array: (b) => new Uint8Array(b) },
};

/** The file dtype of each IR dtype (a plan's parameters are stored in their own dtype). */
export const SAFE_DTYPE: { readonly [D in DType]: SafeDType } = {
  f32: "F32",
  f16: "F16",
  i32: "I32",
  u32: "U32",
  bool: "BOOL",
};

export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface SafeTensor {
  readonly dtype: SafeDType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, SafeTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The reference implementation's limit; a larger header means a corrupt length. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

export function numel(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

const fmtShape = (shape: readonly unknown[]) => `[${shape.join(", ")}]`;

export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === "string" && Object.hasOwn(DTYPES, s);
}

/**
 * Tensors are laid out widest dtype first, then by name, so every tensor starts aligned to its
 * element size (the data section starts 8-aligned) and readers can map it without copying.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafeTensor>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new CheckpointError(
      "encodeSafetensors: this host is big-endian; safetensors data is little-endian",
    );
  }
  for (const [name, t] of tensors) checkTensorToEncode(name, t);
  const order = [...tensors.entries()].sort(([an, a], [bn, b]) =>
    DTYPES[b.dtype].bytes - DTYPES[a.dtype].bytes || (an < bn ? -1 : an > bn ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let end = 0;
  for (const [name, t] of order) {
    const begin = end;
    end += t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [begin, end] };
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.length));
  }
  const out = new Uint8Array(8 + padded + end);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  let at = 8 + padded;
  for (const [, t] of order) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function checkTensorToEncode(name: string, t: SafeTensor): void {
  const where = `encodeSafetensors: tensor "${name}"`;
  if (name === "" || name === METADATA_KEY) throw new CheckpointError(`${where}: reserved or empty name`);
  if (!isSafeDType(t.dtype)) throw new CheckpointError(`${where}: unknown dtype ${String(t.dtype)}`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CheckpointError(`${where}: shape ${fmtShape(t.shape)} must hold non-negative integers`);
  }
  const bytes = DTYPES[t.dtype].bytes;
  if (t.data.BYTES_PER_ELEMENT !== bytes || t.data.length !== numel(t.shape)) {
    throw new CheckpointError(
      `${where}: data holds ${t.data.length} elements of ${t.data.BYTES_PER_ELEMENT} bytes, ` +
        `but ${t.dtype} ${fmtShape(t.shape)} needs ${numel(t.shape)} of ${bytes}`,
    );
  }
}

/** Decodes and validates a safetensors file; `source` (its path) starts every error message. */
export function decodeSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${source}: ${problem}`);
  };
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(
      `header length ${headerLength} runs past the end of the ${bytes.length}-byte file ` +
        `(truncated, or not a safetensors file)`,
    );
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES}`);
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`header must be a JSON object, got ${JSON.stringify(header)?.slice(0, 40)}`);
  }
  const dataStart = 8 + n;
  const dataBytes = bytes.length - dataStart;
  const entries: { name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) metadata = parseMetadata(raw, fail);
    else entries.push({ name, ...parseEntry(raw, dataBytes, (p) => fail(`tensor "${name}": ${p}`)) });
  }
  const byBegin = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byBegin.length; i++) {
    const [a, b] = [byBegin[i - 1]!, byBegin[i]!];
    if (b.begin < a.end) {
      fail(`tensors "${a.name}" [${a.begin}, ${a.end}] and "${b.name}" [${b.begin}, ${b.end}] overlap`);
    }
  }
  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const data = DTYPES[e.dtype].array(bytes.slice(dataStart + e.begin, dataStart + e.end).buffer);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

function parseMetadata(raw: unknown, fail: (p: string) => never): Record<string, string> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(`${METADATA_KEY} must be an object of strings`);
  }
  for (const [k, v] of Object.entries(raw as object)) {
    if (typeof v !== "string") fail(`${METADATA_KEY}.${k} must be a string, got ${JSON.stringify(v)}`);
  }
  return raw as Record<string, string>;
}

function parseEntry(raw: unknown, dataBytes: number, fail: (p: string) => never) {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("entry must be an object");
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isSafeDType(dtype)) {
    fail(`unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(", ")})`);
  }
  const isCount = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(`shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    fail(`data_offsets ${JSON.stringify(offsets)} must be [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) {
    fail(`data_offsets [${begin}, ${end}] run past the ${dataBytes}-byte data section (truncated file?)`);
  }
  const need = numel(shape as number[]) * DTYPES[dtype as SafeDType].bytes;
  if (end - begin !== need) {
    fail(
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ` +
        `${fmtShape(shape as number[])} needs ${need}`,
    );
  }
  return { dtype: dtype as SafeDType, shape: shape as number[], begin, end };
}

/** How many names a mismatch message lists per kind before it only counts the rest. */
const LIST_LIMIT = 12;

export interface ExpectedTensor {
  readonly shape: readonly number[];
  readonly dtype: SafeDType;
}

/**
 * Checks that `file` holds exactly the plan's parameters (under each of `prefixes`: `["m.", "v."]`
 * for optimizer state), with the same shapes and dtypes. This rejects a checkpoint of another spec
 * or config with a message that lists the differing names.
 */
export function checkAgainstParams(
  file: SafetensorsFile,
  params: readonly ParamLayout[],
  source: string,
  prefixes: readonly string[] = [""],
): void {
  const expected = new Map<string, ExpectedTensor>();
  for (const prefix of prefixes) {
    for (const p of params) expected.set(prefix + p.path, { shape: p.shape, dtype: SAFE_DTYPE[p.dtype] });
  }
  checkTensors(file, expected, source, "the spec");
}

/** Checks that `file` holds exactly the `expected` tensors; `against` names what they come from. */
export function checkTensors(
  file: SafetensorsFile,
  expected: ReadonlyMap<string, ExpectedTensor>,
  source: string,
  against: string,
): void {
  const missing = [...expected.keys()].filter((k) => !file.tensors.has(k));
  const extra = [...file.tensors.keys()].filter((k) => !expected.has(k));
  const differ: string[] = [];
  for (const [name, want] of expected) {
    const got = file.tensors.get(name);
    if (!got) continue;
    if (fmtShape(got.shape) !== fmtShape(want.shape) || got.dtype !== want.dtype) {
      differ.push(
        `${name} is ${got.dtype} ${fmtShape(got.shape)} in the file, ` +
          `${want.dtype} ${fmtShape(want.shape)} in ${against}`,
      );
    }
  }
  if (missing.length + extra.length + differ.length === 0) return;
  const list = (label: string, items: string[], sep: string) =>
    items.length === 0 ? [] : [
      `  ${label} (${items.length}): ${items.slice(0, LIST_LIMIT).join(sep)}` +
      (items.length > LIST_LIMIT ? `${sep}... ${items.length - LIST_LIMIT} more` : ""),
    ];
  throw new CheckpointError(
    [
      `${source} does not match ${against} (a checkpoint of another spec or config?):`,
      ...list("missing", missing, ", "),
      ...list(`not in ${against}`, extra, ", "),
      ...list("different shape or dtype", differ, "; "),
    ].join("\n"),
  );
}

/**
 * Refuses a file with a NaN or infinite float: training stops before it would save one (a
 * non-finite loss is never checkpointed), so such values mean the file was damaged or written by
 * something else, and a model loaded from it would only ever produce NaN.
 */
export function checkFinite(file: SafetensorsFile, source: string): void {
  const bad = nonFiniteTensors(file.tensors);
  if (!bad) return;
  throw new CheckpointError(
    `${source}: ${bad}; a run never saves those, so the file is damaged (use an earlier checkpoint or retrain)`,
  );
}

/** "2 tensor(s) hold non-finite values: a.w (NaN at index 3), ..." or undefined when all are finite. */
export function nonFiniteTensors(tensors: ReadonlyMap<string, SafeTensor>): string | undefined {
  const bad: string[] = [];
  let count = 0;
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
    const first = t.data.findIndex((x) => !Number.isFinite(x));
    if (first < 0) continue;
    count++;
    if (bad.length < 3) bad.push(`${name} (${t.data[first]} at index ${first})`);
  }
  if (count === 0) return undefined;
  const more = count > bad.length ? ` and ${count - bad.length} more` : "";
  return `${count} tensor(s) hold non-finite values: ${bad.join(", ")}${more}`;
}
