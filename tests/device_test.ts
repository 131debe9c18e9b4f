import assert from "node:assert/strict";
import { bindingDecl, type Kernel } from "../kernels/kernel.ts";
import {
  classifyAdapter,
  describeAdapter,
  DeviceError,
  deviceLostMessage,
  formatAdapterReport,
  type LimitName,
  openDevice,
} from "../runtime/device.ts";
import { gpuEnv } from "../runtime/gpu_env.ts";
import { runKernel, timeKernel } from "./gpu_harness.ts";

/** Doubles `x` into `y`, one element per thread; `n` need not be a multiple of the workgroup size. */
function doubling(n: number, workgroup = 64): Kernel {
  const bindings = [
    { binding: 0, buffer: "x", access: "read" },
    { binding: 1, buffer: "y", access: "read_write" },
  ] as const;
  return {
    name: "double_test",
    doc: "y = 2 x",
    ops: ["mul"],
    wgsl: `${bindings.map(bindingDecl).join("\n")}
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x >= ${n}u) { return; }
  y[id.x] = 2.0 * x[id.x];
}`,
    workgroupSize: [workgroup, 1, 1],
    dispatch: [Math.ceil(n / workgroup), 1, 1],
    bindings,
    flops: n,
    bytes: 8 * n,
  };
}

/** On the machines this project runs on, a hardware GPU shows up as an NVIDIA device node. */
function expectedAdapterClass(): string {
  const declared = Deno.env.get("EXPECT_ADAPTER_CLASS");
  if (declared) return declared;
  try {
    Deno.statSync("/dev/nvidia0");
    return "gpu";
  } catch {
    return "cpu";
  }
}

Deno.test("device: opens once, with the adapter's maxima and optional features", async () => {
  const handle = await openDevice();
  assert.equal(await openDevice(), handle, "a second call returns the same device");
  const { adapter, device } = handle;
  for (
    const limit of [
      "maxBufferSize",
      "maxStorageBufferBindingSize",
      "maxComputeInvocationsPerWorkgroup",
    ] as const
  ) {
    assert.equal(device.limits[limit], adapter.limits[limit], limit);
  }
  for (const feature of ["shader-f16", "subgroups", "timestamp-query"] as const) {
    assert.equal(device.features.has(feature), adapter.features.has(feature), feature);
  }
});

Deno.test("device: the report names the adapter and has sane limits", async () => {
  const report = describeAdapter(await openDevice());
  assert.ok(report.name.length > 0);
  assert.equal(report.adapterClass, expectedAdapterClass());
  // WebGPU's guaranteed minimums; our device asks for the adapter's maxima, never less.
  assert.ok(report.limits.maxBufferSize >= 256 * 2 ** 20, `maxBufferSize ${report.limits.maxBufferSize}`);
  assert.ok(report.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20);
  assert.ok(report.limits.maxStorageBuffersPerShaderStage >= 8);
  assert.ok(report.limits.maxComputeWorkgroupStorageSize >= 16384);
  assert.ok(report.limits.maxComputeInvocationsPerWorkgroup >= 256);
  assert.ok(report.limits.maxComputeWorkgroupsPerDimension >= 65535);
  assert.match(report.cacheKey, /^[a-z0-9]+(-[a-z0-9]+)*$/);
  for (const word of report.description.toLowerCase().match(/[a-z]+/g) ?? []) {
    assert.ok(report.cacheKey.includes(word));
  }
  const text = formatAdapterReport(report);
  assert.ok(text.includes(report.name) && text.includes(`class ${report.adapterClass}`), text);
});

Deno.test("device: software rasterizers are classed cpu, hardware gpu", () => {
  const cpu = [
    "llvmpipe (LLVM 15.0.6, 256 bits)",
    "SwiftShader Device (Subzero)",
    "Microsoft Basic Render Driver",
  ];
  for (const description of cpu) {
    assert.equal(classifyAdapter({ description, isFallbackAdapter: false }), "cpu");
  }
  assert.equal(classifyAdapter({ description: "NVIDIA H100 80GB HBM3", isFallbackAdapter: false }), "gpu");
  assert.equal(classifyAdapter({ description: "Apple M2", isFallbackAdapter: true }), "cpu");
});

Deno.test("device: what is missing is said, with numbers", async (t) => {
  const rejects = (req: Parameters<typeof openDevice>[0], message: RegExp) =>
    assert.rejects(openDevice(req), (e: unknown) => {
      assert.ok(e instanceof DeviceError, String(e));
      assert.match(e.message, message);
      return true;
    });
  await t.step("a feature", () =>
    rejects(
      { requiredFeatures: ["no-such-feature" as GPUFeatureName] },
      /^WebGPU feature "no-such-feature" required, but adapter ".+" does not offer it \(it offers: .+\)/,
    ));
  await t.step("a limit", () =>
    rejects(
      { minLimits: { maxBufferSize: 2 ** 52 } },
      /^WebGPU limit maxBufferSize: need at least 4503599627370496, but adapter ".+" allows at most \d+\.$/,
    ));
  await t.step("an alignment", () =>
    rejects(
      { minLimits: { minStorageBufferOffsetAlignment: 1 } },
      /^WebGPU limit minStorageBufferOffsetAlignment: the work copes with alignments up to 1, but adapter ".+" requires \d+\.$/,
    ));
  await t.step("an unknown limit", () =>
    rejects(
      { minLimits: { maxWidgets: 1 } as Partial<Record<LimitName, number>> },
      /^unknown WebGPU limit "maxWidgets" \(known: .*maxBufferSize.*\)/,
    ));
  await t.step("a failed request is not remembered; a satisfiable one opens", async () => {
    const { device } = await openDevice({ minLimits: { maxStorageBuffersPerShaderStage: 4 } });
    assert.ok(device.limits.maxStorageBuffersPerShaderStage >= 4);
    await rejects({ minLimits: { maxBufferSize: 2 ** 52 } }, /need at least/);
  });
});

Deno.test("device: a lost device is explained", () => {
  const text = deviceLostMessage({ reason: "unknown", message: "VK_ERROR_DEVICE_LOST" }, "NVIDIA H100");
  assert.match(text, /^WebGPU device on "NVIDIA H100" was lost \(reason: unknown: VK_ERROR_DEVICE_LOST\)/);
  assert.match(text, /openDevice\(\) opens a fresh device/);
});

Deno.test("harness: a kernel whose size is not a multiple of the workgroup runs and matches", async () => {
  const n = 1000;
  const x = Float32Array.from({ length: n }, (_, i) => i * 0.37 - 100);
  const y = new Float32Array(n).fill(-1);
  const out = await runKernel(doubling(n), { x, y }, ["y", "x"]);
  const got = new Float32Array(out.y!);
  assert.equal(got.length, n);
  for (let i = 0; i < n; i++) assert.equal(got[i], 2 * x[i]!, `y[${i}]`);
  assert.deepEqual(new Float32Array(out.x!), x, "x is read back unchanged");
  assert.equal(y[0], -1, "the host array is not touched");
});

Deno.test("harness: errors name the kernel and what is wrong", async () => {
  await assert.rejects(
    runKernel(doubling(8), { x: new Float32Array(8) }, []),
    /kernel double_test binds "y" at binding 1, but no buffer of that name was given \(given: x\)/,
  );
  const broken = { ...doubling(8), wgsl: doubling(8).wgsl.replace("2.0 * x[id.x]", "2u * x[id.x]") };
  await assert.rejects(
    runKernel(broken, { x: new Float32Array(8), y: new Float32Array(8) }, ["y"]),
    /^Error: kernel double_test: Shader validation error/,
  );
  await assert.rejects(runKernel(doubling(8), { x: new Float32Array(8) }, ["z"]), /asked to read "z"/);
});

Deno.test("harness: timeKernel gives a positive median", async () => {
  const n = 1 << 16;
  const ms = await timeKernel(doubling(n), { x: new Float32Array(n), y: new Float32Array(n) }, 5);
  assert.ok(Number.isFinite(ms) && ms > 0, `${ms} ms`);
});

Deno.test("gpu env: Vulkan and a private XDG_RUNTIME_DIR on Linux, nothing elsewhere", () => {
  const env = gpuEnv();
  if (Deno.build.os !== "linux") return assert.deepEqual(env, {});
  assert.ok(env.DENO_WEBGPU_BACKEND);
  const dir = env.XDG_RUNTIME_DIR!;
  const info = Deno.statSync(dir);
  assert.ok(dir.startsWith("/") && info.isDirectory, dir);
  assert.equal(info.uid, Deno.uid());
  assert.equal(info.mode! & 0o777, 0o700);
});

/** Runs `args` under deno with DENO_WEBGPU_BACKEND and XDG_RUNTIME_DIR removed from the environment. */
async function denoWithoutGpuEnv(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Deno.env.toObject();
  delete env.XDG_RUNTIME_DIR;
  delete env.DENO_WEBGPU_BACKEND;
  const out = await new Deno.Command(Deno.execPath(), { args, env, clearEnv: true, cwd: ROOT }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("gpu env: openDevice and the launcher keep Mesa's XDG_RUNTIME_DIR warning away", async (t) => {
  await t.step("openDevice in-process", async () => {
    const script = `import { describeAdapter, openDevice } from "./runtime/device.ts";
      console.log(describeAdapter(await openDevice()).name, Deno.env.get("DENO_WEBGPU_BACKEND"));`;
    const run = await denoWithoutGpuEnv(["eval", script]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, Deno.build.os === "linux" ? /\S vulkan\n$/ : /\S undefined\n$/);
    assert.doesNotMatch(run.stderr, /XDG_RUNTIME_DIR/);
  });
  await t.step("launcher around a script that calls navigator.gpu itself", async () => {
    const script = `const a = await navigator.gpu.requestAdapter(); console.log(a ? "adapter" : "none");`;
    const run = await denoWithoutGpuEnv(["run", "-A", "runtime/gpu_env.ts", Deno.execPath(), "eval", script]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "adapter\n");
    assert.doesNotMatch(run.stderr, /XDG_RUNTIME_DIR/);
  });
});
