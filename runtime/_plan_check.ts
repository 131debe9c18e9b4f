/** Checks of a plan before anything is allocated, so a bad plan fails with a message naming the part at fault. */
import type { Plan } from "../compiler/plan.ts";
import type { KernelBinding } from "../kernels/kernel.ts";
import { describe, slotWords } from "./_slots.ts";
import { DeviceError } from "./device.ts";

/** Structural checks, so a bad plan fails in `create` with a message naming the part at fault. */
export function checkPlan(plan: Plan): void {
  const where = `plan "${plan.model}"`;
  for (const f of plan.features ?? []) {
    if (typeof f !== "string") {
      throw new Error(`${where}: features lists ${JSON.stringify(f)}; expected names`);
    }
  }
  const words = new Map<string, number>();
  for (const b of plan.buffers) {
    if (words.has(b.name)) throw new Error(`${where}: buffer "${b.name}" is declared twice`);
    if (!Number.isInteger(b.bytes) || b.bytes < 0 || b.bytes % 4 !== 0) {
      throw new Error(`${where}: buffer "${b.name}" has ${b.bytes} bytes; expected a multiple of 4`);
    }
    words.set(b.name, b.bytes / 4);
  }
  const range = (what: string, buffer: string, offset: number, count: number) => {
    const size = words.get(buffer);
    if (size === undefined) {
      throw new Error(`${where}: ${what} uses buffer "${buffer}", which the plan lacks`);
    }
    if (offset < 0 || offset + count > size) {
      throw new Error(
        `${where}: ${what} covers words [${offset}, ${offset + count}) of "${buffer}" (${size} words)`,
      );
    }
  };
  for (const slot of plan.state ?? []) {
    if (slot.dtype === "f16") {
      throw new Error(`${where}: state ${describe(slot)}: f16 slots are not supported`);
    }
    range(`state ${describe(slot)}`, slot.buffer, slot.offset, slotWords(slot));
  }
  plan.kernels.forEach((k, i) => {
    k.bindings.forEach((b: KernelBinding) =>
      range(`kernel ${i} "${k.name}" binding ${b.binding}`, b.buffer, 0, 0)
    );
    if (k.offsets === undefined) return;
    // The offsets uniform sits at binding bindings.length, so the storage bindings must be 0..n-1.
    const bad = k.offsets.find((o) => !Number.isInteger(o) || o < 0 || o > 0xffffffff);
    if (!Array.isArray(k.offsets) || bad !== undefined) {
      throw new Error(`${where}: kernel ${i} "${k.name}" has offset ${bad}; expected u32 word offsets`);
    }
    if (k.bindings.some((b, j) => b.binding !== j)) {
      throw new Error(
        `${where}: kernel ${i} "${k.name}" binds offsets, so its storage bindings must be 0..${
          k.bindings.length - 1
        } in order; got ${k.bindings.map((b) => b.binding).join(", ")}`,
      );
    }
  });
  for (const [name, entry] of Object.entries(plan.entries)) {
    entry.steps.forEach((s, i) => {
      if (s.kind === "clear") return range(`entry "${name}" step ${i} (clear)`, s.buffer, s.offset, s.words);
      if (s.kind === "copy") {
        range(`entry "${name}" step ${i} (copy source)`, s.from.buffer, s.from.offset, s.words);
        if (s.from.buffer === s.buffer) {
          throw new Error(`${where}: entry "${name}" step ${i} copies within buffer "${s.buffer}"`);
        }
        return range(`entry "${name}" step ${i} (copy)`, s.buffer, s.offset, s.words);
      }
      if (!plan.kernels[s.kernel]) {
        throw new Error(
          `${where}: entry "${name}" step ${i} dispatches kernel ${s.kernel} of ${plan.kernels.length}`,
        );
      }
    });
    for (const stateName of entry.state ?? []) {
      if (!plan.state?.some((s) => s.name === stateName)) {
        throw new Error(`${where}: entry "${name}" uses state "${stateName}", which the plan lacks`);
      }
    }
    for (const slot of [...entry.inputs, ...entry.outputs]) {
      if (slot.dtype === "f16") {
        throw new Error(`${where}: entry "${name}" slot ${describe(slot)}: f16 slots are not supported`);
      }
      range(`entry "${name}" slot ${describe(slot)}`, slot.buffer, slot.offset, slotWords(slot));
    }
  }
}

/**
 * The device features the plan's kernels need (f16 activation storage needs "shader-f16"), checked
 * before any kernel is built so the message names the feature and the adapter, not a WGSL error.
 */
export function checkFeatures(plan: Plan, features: ReadonlySet<string>, adapter: string): void {
  const missing = (plan.features ?? []).filter((f) => !features.has(f));
  if (missing.length === 0) return;
  const list = missing.map((f) => `"${f}"`).join(", ");
  throw new DeviceError(
    `plan "${plan.model}" needs WebGPU feature${missing.length > 1 ? "s" : ""} ${list}, but adapter ` +
      `"${adapter}" does not offer ${missing.length > 1 ? "them" : "it"} ` +
      `(it offers: ${[...features].sort().join(", ") || "none"}); compile with precision.storage = "f32"`,
  );
}

/** The device limits the plan runs into, checked here so the message names the plan's numbers. */
export function checkLimits(plan: Plan, device: GPUDevice): void {
  const largest = Math.max(0, ...plan.buffers.map((b) => b.bytes));
  const bindings = Math.max(0, ...plan.kernels.map((k) => k.bindings.length));
  const needs: [keyof GPUSupportedLimits, number][] = [
    ["maxStorageBufferBindingSize", largest],
    ["maxBufferSize", largest],
    ["maxStorageBuffersPerShaderStage", bindings],
    ["maxComputeWorkgroupsPerDimension", Math.max(0, ...plan.kernels.flatMap((k) => k.dispatch))],
  ];
  for (const [limit, need] of needs) {
    const has = device.limits[limit] as number;
    if (need > has) {
      throw new Error(`plan "${plan.model}" needs ${limit} >= ${need}, but the device offers ${has}`);
    }
  }
}
