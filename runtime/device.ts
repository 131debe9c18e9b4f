/**
 * The device layer: finds a WebGPU adapter (Vulkan preferred on Linux, see gpu_env.ts) and opens a
 * device with the adapter's maxima for the limits compute work runs into, plus the optional features
 * kernels can use. Failures say what is missing, with numbers, and what to install.
 */
import { applyGpuEnv } from "./gpu_env.ts";

export interface DeviceHandle {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
}

export type LimitName = keyof GPUSupportedLimits;

export interface DeviceRequirements {
  readonly requiredFeatures?: readonly GPUFeatureName[];
  /** Per limit, what the work needs; for `min*Alignment` limits, the largest alignment it copes with. */
  readonly minLimits?: Partial<Record<LimitName, number>>;
}

/** The adapter or device cannot give what was asked; the message says what and what to do. */
export class DeviceError extends Error {
  override name = "DeviceError";
}

/** Raised to their adapter maxima on every device we open. */
const MAXIMIZED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
] as const satisfies readonly LimitName[];

/** Enabled whenever the adapter has them; kernels check `device.features` before using them. */
const OPTIONAL_FEATURES: readonly GPUFeatureName[] = ["shader-f16", "subgroups", "timestamp-query"];

const opened = new Map<string, Promise<DeviceHandle>>();

/**
 * One device per set of requirements per process (usually just one), opened on first use. A failed
 * or lost device is forgotten, so the next call tries again.
 */
export function openDevice(requirements: DeviceRequirements = {}): Promise<DeviceHandle> {
  const key = requirementsKey(requirements);
  let handle = opened.get(key);
  if (!handle) {
    handle = requestDevice(requirements, () => opened.delete(key));
    handle.catch(() => opened.delete(key));
    opened.set(key, handle);
  }
  return handle;
}

async function requestDevice(req: DeviceRequirements, forget: () => void): Promise<DeviceHandle> {
  if (!("gpu" in navigator)) {
    throw new DeviceError(
      `navigator.gpu is missing: this runtime has no WebGPU (use Deno 2.9).${setupHint()}`,
    );
  }
  try {
    applyGpuEnv();
  } catch (e) {
    // Without --allow-env / --allow-write the defaults may still work.
    if (!(e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied)) throw e;
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new DeviceError(`no WebGPU adapter found (${backendSetting()}).${setupHint()}`);
  const name = adapterName(adapter.info);

  const missing = (req.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length > 0) {
    throw new DeviceError(
      `WebGPU feature${missing.length > 1 ? "s" : ""} ${missing.map((f) => `"${f}"`).join(", ")} ` +
        `required, but adapter "${name}" does not offer ${missing.length > 1 ? "them" : "it"} ` +
        `(it offers: ${[...adapter.features].sort().join(", ") || "none"}).`,
    );
  }
  const requiredFeatures = [
    ...new Set([
      ...(req.requiredFeatures ?? []),
      ...OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)),
    ]),
  ];
  const requiredLimitValues = requiredLimits(adapter, name, req.minLimits ?? {});
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits: requiredLimitValues });
  } catch (e) {
    throw new DeviceError(`adapter "${name}" refused a device: ${e instanceof Error ? e.message : e}`);
  }
  device.lost.then((info) => {
    forget();
    if (info.reason !== "destroyed") console.error(deviceLostMessage(info, name));
  });
  return { adapter, device };
}

function requiredLimits(
  adapter: GPUAdapter,
  name: string,
  needed: Partial<Record<LimitName, number>>,
): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const limit of MAXIMIZED_LIMITS) limits[limit] = adapter.limits[limit];
  for (const [limit, value] of Object.entries(needed)) {
    if (!(limit in adapter.limits)) {
      throw new DeviceError(`unknown WebGPU limit "${limit}" (known: ${limitNames(adapter).join(", ")}).`);
    }
    const has = adapter.limits[limit as LimitName];
    const isAlignment = limit.startsWith("min");
    if (isAlignment ? has > value : has < value) {
      throw new DeviceError(
        isAlignment
          ? `WebGPU limit ${limit}: the work copes with alignments up to ${value}, ` +
            `but adapter "${name}" requires ${has}.`
          : `WebGPU limit ${limit}: need at least ${value}, but adapter "${name}" allows at most ${has}.`,
      );
    }
    limits[limit] = isAlignment ? has : Math.max(limits[limit] ?? value, value);
  }
  return limits;
}

function limitNames(adapter: GPUAdapter): string[] {
  const names: string[] = [];
  for (const name in adapter.limits) names.push(name);
  return names;
}

/** What a person reads when the device goes away under running work. */
export function deviceLostMessage(info: { reason: string; message: string }, adapter: string): string {
  return `WebGPU device on "${adapter}" was lost (reason: ${info.reason || "unknown"}` +
    `${info.message ? `: ${info.message}` : ""}). Work in flight and its buffers are gone. Likely causes: ` +
    `a dispatch that ran past the driver's watchdog, running out of GPU memory, or a driver reset. ` +
    `openDevice() opens a fresh device.`;
}

function requirementsKey(req: DeviceRequirements): string {
  const features = [...(req.requiredFeatures ?? [])].sort();
  const limits = Object.entries(req.minLimits ?? {}).sort(([a], [b]) => a < b ? -1 : 1);
  return JSON.stringify([features, limits]);
}

function backendSetting(): string {
  const backend = envOrUndefined("DENO_WEBGPU_BACKEND");
  return backend === undefined
    ? "DENO_WEBGPU_BACKEND unset"
    : `DENO_WEBGPU_BACKEND=${JSON.stringify(backend)}`;
}

function envOrUndefined(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

function setupHint(): string {
  if (Deno.build.os !== "linux") return "";
  return `\nOn Linux: install a Vulkan driver (without a GPU, Mesa's lavapipe: ` +
    `apt-get install -y mesa-vulkan-drivers libvulkan1), check that /usr/share/vulkan/icd.d ` +
    `lists it (found: ${vulkanDrivers().join(", ") || "none"}), and set DENO_WEBGPU_BACKEND=vulkan.`;
}

function vulkanDrivers(): string[] {
  try {
    return [...Deno.readDirSync("/usr/share/vulkan/icd.d")].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** The adapter's description, else vendor and architecture. */
export function adapterName(info: GPUAdapterInfo): string {
  return info.description || [info.vendor, info.architecture].filter(Boolean).join(" ") || "unknown adapter";
}

// ---- What the adapter is: for people, for choosing kernel variants, for keying caches ----

export type AdapterClass = "cpu" | "gpu";
/** A guess at the graphics API under WebGPU: Deno does not say which one it picked. */
export type GraphicsApi = "vulkan" | "metal" | "d3d12" | "gl";

export interface AdapterReport {
  readonly name: string;
  readonly description: string;
  /** e.g. "NVIDIA (0x10de)", "Mesa (0x10005)". */
  readonly vendor: string;
  readonly architecture: string;
  readonly api: GraphicsApi;
  /** `api`, or "cpu" for a software rasterizer (lavapipe/llvmpipe, SwiftShader, WARP). */
  readonly backend: GraphicsApi | "cpu";
  /** Picks kernel variants: a CPU adapter wants few, fat workgroups; a GPU wants many threads. */
  readonly adapterClass: AdapterClass;
  readonly isFallbackAdapter: boolean;
  /** Features enabled on the device, and every feature the adapter offers. */
  readonly features: {
    readonly shaderF16: boolean;
    readonly subgroups: boolean;
    readonly timestampQuery: boolean;
    readonly all: readonly string[];
  };
  /** Limits granted to the device. */
  readonly limits: Readonly<Record<ReportedLimit, number>>;
  /** Names this adapter in on-disk caches (autotuning choices): lowercase letters, digits, dashes. */
  readonly cacheKey: string;
}

const REPORTED_LIMITS = [...MAXIMIZED_LIMITS, "minStorageBufferOffsetAlignment"] as const;
type ReportedLimit = typeof REPORTED_LIMITS[number];

export function describeAdapter(handle: DeviceHandle): AdapterReport {
  const { adapter, device } = handle;
  const info = adapter.info;
  const api = graphicsApi();
  const adapterClass = classifyAdapter(info);
  const limits = Object.fromEntries(REPORTED_LIMITS.map((l) => [l, device.limits[l]])) as Record<
    ReportedLimit,
    number
  >;
  return {
    name: adapterName(info),
    description: info.description,
    vendor: vendorLabel(info.vendor),
    architecture: info.architecture,
    api,
    backend: adapterClass === "cpu" ? "cpu" : api,
    adapterClass,
    isFallbackAdapter: info.isFallbackAdapter,
    features: {
      shaderF16: device.features.has("shader-f16"),
      subgroups: device.features.has("subgroups"),
      timestampQuery: device.features.has("timestamp-query"),
      all: [...adapter.features].sort(),
    },
    limits,
    cacheKey: cacheKey([api, vendorName(info.vendor), info.architecture, info.description]),
  };
}

const SOFTWARE_RASTERIZER = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver|\bwarp\b/i;

export function classifyAdapter(
  info: Pick<GPUAdapterInfo, "description" | "isFallbackAdapter">,
): AdapterClass {
  return info.isFallbackAdapter || SOFTWARE_RASTERIZER.test(info.description) ? "cpu" : "gpu";
}

/** From DENO_WEBGPU_BACKEND (wgpu's names) when set, else the platform's default. */
function graphicsApi(): GraphicsApi {
  const setting = (envOrUndefined("DENO_WEBGPU_BACKEND") ?? "").toLowerCase();
  for (const token of setting.split(",")) {
    const api = WGPU_BACKEND_NAMES[token.trim()];
    if (api) return api;
  }
  return Deno.build.os === "darwin" ? "metal" : Deno.build.os === "windows" ? "d3d12" : "vulkan";
}

const WGPU_BACKEND_NAMES: Record<string, GraphicsApi> = {
  vulkan: "vulkan",
  vk: "vulkan",
  metal: "metal",
  mtl: "metal",
  dx12: "d3d12",
  d3d12: "d3d12",
  gl: "gl",
  gles: "gl",
  opengl: "gl",
};

/** PCI vendor ids (Deno reports the number as a decimal string). */
const VENDORS: Record<number, string> = {
  0x10de: "NVIDIA",
  0x1002: "AMD",
  0x1022: "AMD",
  0x8086: "Intel",
  0x106b: "Apple",
  0x13b5: "ARM",
  0x5143: "Qualcomm",
  0x1414: "Microsoft",
  0x10005: "Mesa",
};

function vendorName(vendor: string): string {
  return /^\d+$/.test(vendor) ? VENDORS[Number(vendor)] ?? "vendor" : vendor;
}

function vendorLabel(vendor: string): string {
  return /^\d+$/.test(vendor) ? `${vendorName(vendor)} (0x${Number(vendor).toString(16)})` : vendor;
}

function cacheKey(parts: readonly string[]): string {
  const key = parts.join(" ").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return key.slice(0, 120).replace(/-$/, "") || "unknown-adapter";
}

export function formatAdapterReport(r: AdapterReport): string {
  const l = r.limits;
  const yesNo = (b: boolean) => (b ? "yes" : "no");
  const software = r.backend === "cpu" ? ` (software, through ${r.api})` : "";
  const fallback = r.isFallbackAdapter ? ", fallback adapter" : "";
  const workgroup =
    `${l.maxComputeWorkgroupSizeX}x${l.maxComputeWorkgroupSizeY}x${l.maxComputeWorkgroupSizeZ}`;
  return [
    `adapter   ${r.name}`,
    `vendor    ${r.vendor}${r.architecture ? `, architecture ${r.architecture}` : ""}`,
    `backend   ${r.backend}${software}, class ${r.adapterClass}${fallback}`,
    `features  shader-f16 ${yesNo(r.features.shaderF16)}, subgroups ${yesNo(r.features.subgroups)}, ` +
    `timestamp-query ${yesNo(r.features.timestampQuery)}`,
    `limits    buffer ${bytes(l.maxBufferSize)}, storage binding ${bytes(l.maxStorageBufferBindingSize)}, ` +
    `${l.maxStorageBuffersPerShaderStage} storage buffers/stage, ` +
    `workgroup storage ${bytes(l.maxComputeWorkgroupStorageSize)}, ` +
    `${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup (${workgroup}), ` +
    `${l.maxComputeWorkgroupsPerDimension} workgroups/dimension`,
    `cache key ${r.cacheKey}`,
  ].join("\n");
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  for (; n >= 1024 && unit < units.length - 1; unit++) n /= 1024;
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[unit]}`;
}
