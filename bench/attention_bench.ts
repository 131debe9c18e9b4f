/**
 * Flash attention against a materialized one, forward + backward, on a Transfusion-like mask (one
 * document, causal, a 64-long image span in every 256 positions): time and the bytes of buffers each
 * path allocates. The materialized path stores scores [B, H, T, S] and their gradient: QK^T and the
 * products by the project's matmul kernels, a masked softmax and dS = P (dP - delta) row kernels.
 * Prints a table; `deno bench` then repeats the two smaller sizes (the largest runs once, in the table).
 *
 *   DENO_WEBGPU_BACKEND=vulkan deno bench -A bench/attention_bench.ts
 */
import {
  type AttentionBackwardIO,
  type AttentionShape,
  attentionVariantName,
  defaultAttentionVariant,
  flashAttentionBackwardKV,
  flashAttentionBackwardQ,
  flashAttentionForward,
} from "../kernels/flash_attention.ts";
import type { Kernel, KernelBinding } from "../kernels/kernel.ts";
import { defaultVariant, matmulKernel, type MatmulShape } from "../kernels/matmul.ts";
import { type PreparedKernel, prepareKernel } from "../kernels/matmul_runner.ts";
import { classifyAdapter, openDevice } from "../runtime/device.ts";

const { adapter, device } = await openDevice();
const adapterClass = classifyAdapter(adapter.info);
const D = 64;
const CASES = [
  { t: 256, heads: 4, runs: 5 },
  { t: 1024, heads: 4, runs: 2 },
  { t: 4096, heads: 2, runs: 1 },
] as const;

// ---- Buffers and the mask, shared by both paths ----

/** Every buffer either path binds: f32 except `positions` (i32 [T, 2]: image span or -1, unused). */
function bufferSizes(shape: AttentionShape, path: "flash" | "naive"): Record<string, number> {
  const { heads, t, s, d } = shape;
  const rows = heads * t;
  const common = {
    q: rows * d,
    k: heads * s * d,
    v: heads * s * d,
    dout: rows * d,
    o: rows * d,
    delta: rows,
    dq: rows * d,
    dk: heads * s * d,
    dv: heads * s * d,
    positions: 2 * t,
  };
  const extra = path === "flash" ? { lse: rows } : { probs: rows * s, dprobs: rows * s };
  return Object.fromEntries(Object.entries({ ...common, ...extra }).map(([name, n]) => [name, 4 * n]));
}

const spanOf = (i: number) => (i % 256 >= 128 && i % 256 < 192 ? Math.floor(i / 256) : -1);

/** WGSL declarations of `names` (bindings in that order) plus the mask functions. */
function declare(names: readonly string[], writes: readonly string[]): {
  declarations: string;
  bindings: KernelBinding[];
} {
  const bindings = names.map((buffer, binding): KernelBinding => ({
    binding,
    buffer,
    access: writes.includes(buffer) ? "read_write" : "read",
  }));
  const lines = bindings.map((b) =>
    `@group(0) @binding(${b.binding}) var<storage, ${b.access}> ${b.buffer}: array<${
      b.buffer === "positions" ? "i32" : "f32"
    }>;`
  );
  const mask = names.includes("positions")
    ? `
fn span_of(i: u32) -> i32 { return positions[i * 2u]; }
fn attn_allowed(i: u32, j: u32) -> bool { return j <= i || (span_of(i) >= 0 && span_of(i) == span_of(j)); }
// Keys all at or before the queries: always; after them: never, unless one image holds both ends.
fn attn_tile_class(i0: u32, i1: u32, j0: u32, j1: u32) -> u32 {
  if (j1 <= i0) { return 1u; }
  if (j0 <= i1) { return 2u; }
  let image_start = (i1 / 256u) * 256u + 128u;
  let shared_image = j0 / 256u == i1 / 256u && i1 >= image_start && j0 < image_start + 64u;
  return select(0u, 2u, shared_image);
}`
    : "";
  return { declarations: lines.join("\n") + mask, bindings };
}

// ---- The flash path: forward, delta, dQ, dK/dV ----

function flashPath(shape: AttentionShape): Kernel[] {
  const { heads, t, d } = shape;
  const at = (b: string, h: string, i: string, x: string) =>
    `((${b} * ${heads}u + ${h}) * ${t}u + ${i}) * ${d}u + ${x}`;
  const row = (b: string, h: string, i: string) => `(${b} * ${heads}u + ${h}) * ${t}u + ${i}`;
  const io = (names: string[], writes: string[]): AttentionBackwardIO => ({
    ...declare(names, writes),
    loadQ: (b, h, i, x) => `q[${at(b, h, i, x)}]`,
    loadK: (b, h, j, x) => `k[${at(b, h, j, x)}]`,
    loadV: (b, h, j, x) => `v[${at(b, h, j, x)}]`,
    loadDO: (b, h, i, x) => `dout[${at(b, h, i, x)}]`,
    loadLse: (b, h, i) => `lse[${row(b, h, i)}]`,
    loadDelta: (b, h, i) => `delta[${row(b, h, i)}]`,
    allowed: (_b, i, j) => `attn_allowed(${i}, ${j})`,
    tileClass: (_b, i0, i1, j0, j1) => `attn_tile_class(${i0}, ${i1}, ${j0}, ${j1})`,
    storeDQ: (b, h, i, x, value) => `dq[${at(b, h, i, x)}] = ${value};`,
    storeDK: (b, h, j, x, value) => `dk[${at(b, h, j, x)}] = ${value};`,
    storeDV: (b, h, j, x, value) => `dv[${at(b, h, j, x)}] = ${value};`,
  });
  const variant = defaultAttentionVariant(adapterClass, shape);
  const forwardIO = {
    ...io(["q", "k", "v", "positions", "o", "lse"], ["o", "lse"]),
    storeO: (b: string, h: string, i: string, x: string, value: string) => `o[${at(b, h, i, x)}] = ${value};`,
    storeLse: (b: string, h: string, i: string, value: string) => `lse[${row(b, h, i)}] = ${value};`,
  };
  const backward = ["q", "k", "v", "dout", "lse", "delta", "positions"];
  return [
    flashAttentionForward("flash_forward", shape, forwardIO, variant),
    deltaKernel(shape),
    flashAttentionBackwardQ("flash_dq", shape, io([...backward, "dq"], ["dq"]), variant),
    flashAttentionBackwardKV("flash_dkv", shape, io([...backward, "dk", "dv"], ["dk", "dv"]), variant),
  ];
}

/** One invocation per row of `rows` rows: `body` sees the row index `r`. */
function rowKernel(name: string, rows: number, names: string[], writes: string[], body: string): Kernel {
  const { declarations, bindings } = declare(names, writes);
  const groups = Math.ceil(rows / 64);
  return {
    name,
    doc: name,
    ops: [name],
    wgsl: `${declarations}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x + gid.y * ${Math.min(groups, 65535) * 64}u;
  if (r >= ${rows}u) { return; }
${body}
}`,
    workgroupSize: [64, 1, 1],
    dispatch: [Math.min(groups, 65535), Math.ceil(groups / 65535), 1],
    bindings,
    flops: 0,
    bytes: 0,
  };
}

/** delta_r = dO_r . O_r: both paths need it. */
function deltaKernel({ heads, t, d }: AttentionShape): Kernel {
  return rowKernel(
    "delta",
    heads * t,
    ["dout", "o", "delta"],
    ["delta"],
    `  var sum = 0.0;
  for (var x = 0u; x < ${d}u; x++) { sum += dout[r * ${d}u + x] * o[r * ${d}u + x]; }
  delta[r] = sum;`,
  );
}

// ---- The materialized path ----

/** A matmul over buffers `a`, `b` into `c`, each element read through an index builder. */
function matmul(
  name: string,
  shape: MatmulShape,
  [a, b, c]: [string, string, string],
  index: {
    a: (bh: string, i: string, kk: string) => string;
    b: (bh: string, kk: string, j: string) => string;
  },
  scale = 1,
): Kernel {
  const { declarations, bindings } = declare([a, b, c], [c]);
  const factor = scale === 1 ? "" : ` * ${scale}`;
  return matmulKernel(name, shape, {
    declarations,
    bindings,
    loadA: (bh, i, kk) => `${a}[${index.a(bh, i, kk)}]`,
    loadB: (bh, kk, j) => `${b}[${index.b(bh, kk, j)}]`,
    store: (bh, i, j, value) =>
      `${c}[(${bh} * ${shape.m}u + ${i}) * ${shape.n}u + ${j}] = ${value}${factor};`,
  }, defaultVariant(adapterClass, shape));
}

function naivePath(shape: AttentionShape): Kernel[] {
  const { heads: bh, t, s, d } = shape;
  const scale = 1 / Math.sqrt(d);
  const td = (b: string, i: string, x: string) => `(${b} * ${t}u + ${i}) * ${d}u + ${x}`;
  const sd = (b: string, j: string, x: string) => `(${b} * ${s}u + ${j}) * ${d}u + ${x}`;
  const ts = (b: string, i: string, j: string) => `(${b} * ${t}u + ${i}) * ${s}u + ${j}`;
  return [
    // scores = scale * Q K^T                                   [BH, T, S]
    matmul("scores", { batch: bh, m: t, n: s, k: d }, ["q", "k", "probs"], {
      a: td,
      b: (b, x, j) => sd(b, j, x),
    }, scale),
    rowKernel(
      "masked_softmax",
      bh * t,
      ["positions", "probs"],
      ["probs"],
      `  let i = r % ${t}u;
  let base = r * ${s}u;
  var m = -1e30;
  for (var j = 0u; j < ${s}u; j++) { if (attn_allowed(i, j)) { m = max(m, probs[base + j]); } }
  var sum = 0.0;
  for (var j = 0u; j < ${s}u; j++) {
    let p = select(0.0, exp(probs[base + j] - m), attn_allowed(i, j));
    probs[base + j] = p;
    sum += p;
  }
  let inv = select(0.0, 1.0 / sum, sum > 0.0);
  for (var j = 0u; j < ${s}u; j++) { probs[base + j] *= inv; }`,
    ),
    // o = P V
    matmul("pv", { batch: bh, m: t, n: d, k: s }, ["probs", "v", "o"], { a: ts, b: sd }),
    deltaKernel(shape),
    // dP = dO V^T
    matmul("dp", { batch: bh, m: t, n: s, k: d }, ["dout", "v", "dprobs"], {
      a: td,
      b: (b, x, j) => sd(b, j, x),
    }),
    rowKernel(
      "ds",
      bh * t,
      ["probs", "delta", "dprobs"],
      ["dprobs"],
      `  for (var j = 0u; j < ${s}u; j++) {
    let e = r * ${s}u + j;
    dprobs[e] = probs[e] * (dprobs[e] - delta[r]);
  }`,
    ),
    // dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dO
    matmul("dq", { batch: bh, m: t, n: d, k: s }, ["dprobs", "k", "dq"], { a: ts, b: sd }, scale),
    matmul("dk", { batch: bh, m: s, n: d, k: t }, ["dprobs", "q", "dk"], {
      a: (b, j, i) => ts(b, i, j),
      b: td,
    }, scale),
    matmul("dv", { batch: bh, m: s, n: d, k: t }, ["probs", "dout", "dv"], {
      a: (b, j, i) => ts(b, i, j),
      b: td,
    }),
  ];
}

// ---- Running ----

interface Path {
  readonly kernels: PreparedKernel[];
  readonly forwardCount: number;
  readonly bytes: number;
  readonly buffers: Map<string, GPUBuffer>;
}

async function preparePath(shape: AttentionShape, which: "flash" | "naive"): Promise<Path> {
  const sizes = bufferSizes(shape, which);
  const buffers = new Map<string, GPUBuffer>();
  for (const [name, bytes] of Object.entries(sizes)) {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer = device.createBuffer({ label: name, size: bytes, usage });
    const data = name === "positions"
      ? Int32Array.from({ length: bytes / 4 }, (_, e) => (e % 2 === 0 ? spanOf(e / 2) : 0))
      : Float32Array.from({ length: bytes / 4 }, (_, e) => Math.sin(e * 0.37 + name.length));
    device.queue.writeBuffer(buffer, 0, data);
    buffers.set(name, buffer);
  }
  const list = which === "flash" ? flashPath(shape) : naivePath(shape);
  const kernels = await Promise.all(list.map((k) => prepareKernel(device, k, buffers)));
  const bytes = Object.values(sizes).reduce((a, b) => a + b, 0);
  return { kernels, forwardCount: which === "flash" ? 1 : 3, bytes, buffers };
}

async function run(kernels: readonly PreparedKernel[]): Promise<void> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const { pipeline, bindGroup, kernel } of kernels) {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...kernel.dispatch);
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
}

/** Seconds of CPU this process has used (all lavapipe threads); NaN where /proc is missing. */
function cpuSeconds(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Median wall milliseconds of forward and of backward over `runs`, and CPU ms per fwd+bwd. */
async function time(path: Path, runs: number) {
  const forward = path.kernels.slice(0, path.forwardCount);
  const backward = path.kernels.slice(path.forwardCount);
  const fw: number[] = [];
  const bw: number[] = [];
  if (runs > 1) await run(path.kernels); // warm-up
  const cpu0 = cpuSeconds();
  for (let r = 0; r < runs; r++) {
    let start = performance.now();
    await run(forward);
    fw.push(performance.now() - start);
    start = performance.now();
    await run(backward);
    bw.push(performance.now() - start);
  }
  const median = (x: number[]) => x.sort((a, b) => a - b)[x.length >> 1]!;
  return { forward: median(fw), backward: median(bw), cpu: (cpuSeconds() - cpu0) * 1000 / runs };
}

async function read(buffer: GPUBuffer): Promise<Float32Array> {
  const staging = device.createBuffer({
    size: buffer.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const data = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return data;
}

/** Largest |flash - naive| over o, dq, dk, dv, relative to the largest naive magnitude. */
async function disagreement(flash: Path, naive: Path): Promise<number> {
  let worst = 0;
  for (const name of ["o", "dq", "dk", "dv"]) {
    const [a, b] = [await read(flash.buffers.get(name)!), await read(naive.buffers.get(name)!)];
    const scale = b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (let e = 0; e < a.length; e++) worst = Math.max(worst, Math.abs(a[e]! - b[e]!) / (1 + scale));
  }
  return worst;
}

const rows: string[][] = [];
for (const { t, heads, runs } of CASES) {
  const shape = { batch: 1, heads, t, s: t, d: D };
  const flash = await preparePath(shape, "flash");
  const naive = await preparePath(shape, "naive");
  const [f, n] = [await time(flash, runs), await time(naive, runs)];
  const agree = await disagreement(flash, naive);
  const mb = (x: number) => (x / 2 ** 20).toFixed(1);
  for (const [name, path, m] of [["flash", flash, f], ["materialized", naive, n]] as const) {
    rows.push([
      `${t}`,
      `${heads}`,
      name,
      m.forward.toFixed(1),
      m.backward.toFixed(1),
      (m.forward + m.backward).toFixed(1),
      m.cpu.toFixed(0),
      mb(path.bytes),
      name === "flash" ? agree.toExponential(1) : "",
    ]);
  }
  if (t <= 1024) {
    for (const [name, path] of [["flash", flash], ["materialized", naive]] as const) {
      Deno.bench(
        { name: `attention t ${t} ${name} fwd+bwd`, group: `t ${t}`, n: 2, warmup: 0 },
        () => run(path.kernels),
      );
    }
  }
}

const header = ["T", "H", "path", "fwd ms", "bwd ms", "total ms", "cpu ms", "MiB", "max rel diff"];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
const line = (r: readonly string[]) => r.map((x, c) => x.padStart(widths[c]!)).join("  ");
const variant = attentionVariantName(
  defaultAttentionVariant(adapterClass, { batch: 1, heads: 4, t: 1024, s: 1024, d: D }),
);
console.log(
  `\nattention fwd+bwd, B = 1, D = ${D}, ${
    adapter.info.description || "adapter"
  } (${adapterClass}), flash ${variant}`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));

/** The table above, for bench/suites/attention.ts. */
export const ATTENTION_TABLE = { header, rows, variant };
