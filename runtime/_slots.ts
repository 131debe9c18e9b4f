/**
 * Entry slots on the host: checking and converting inputs to the 32-bit words their slots hold,
 * and turning read-back words into typed arrays.
 */
import type { DType } from "../compiler/ir/mod.ts";
import type { TensorSlot } from "../compiler/plan.ts";

/** Host copies of slots; always backed by a plain ArrayBuffer, so they can go to `writeBuffer`. */
export type HostArray = Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;

export function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function slotWords(slot: TensorSlot): number {
  return elements(slot.shape);
}

/** Checks the inputs of entry `name` and converts each to the bits its slot holds. */
export function encodeInputs(
  name: string,
  slots: readonly TensorSlot[],
  inputs: Readonly<Record<string, ArrayLike<number>>>,
): Map<TensorSlot, HostArray> {
  const known = new Set(slots.map((s) => s.name));
  const unknown = Object.keys(inputs).filter((k) => !known.has(k));
  if (unknown.length) {
    throw new Error(
      `entry "${name}" has no input ${unknown.map((u) => `"${u}"`).join(", ")}; inputs: ${[...known]}`,
    );
  }
  const missing = slots.filter((s) => s.name !== "seed" && !(s.name in inputs)).map((s) => describe(s));
  if (missing.length) throw new Error(`entry "${name}" is missing input ${missing.join(", ")}`);
  const host = new Map<TensorSlot, HostArray>();
  for (const slot of slots) {
    const values = inputs[slot.name];
    if (values !== undefined) host.set(slot, encode(name, slot, values));
  }
  return host;
}

export function describe(slot: TensorSlot): string {
  return `"${slot.name}" ${slot.dtype}[${slot.shape.join(", ")}]`;
}

export function encode(entry: string, slot: TensorSlot, values: ArrayLike<number>): HostArray {
  const expected = slotWords(slot);
  if (values.length !== expected) {
    throw new Error(
      `entry "${entry}" input ${describe(slot)} expects ${expected} values, got ${values.length}`,
    );
  }
  return ENCODE[slot.dtype](values, (i, v) => {
    throw new Error(`entry "${entry}" input ${describe(slot)}: element ${i} is ${v}, not a ${slot.dtype}`);
  });
}

type Reject = (index: number, value: number) => never;

function integers(values: ArrayLike<number>, lo: number, hi: number, reject: Reject): number[] {
  return Array.from(values, (v, i) => Number.isInteger(v) && v >= lo && v <= hi ? v : reject(i, v));
}

const ENCODE: { readonly [D in DType]: (values: ArrayLike<number>, reject: Reject) => HostArray } = {
  f32: (v) => Float32Array.from(v),
  f16: () => {
    throw new Error("f16 entry slots are not supported (the act arena holds 32-bit words)");
  },
  i32: (v, reject) => Int32Array.from(integers(v, -(2 ** 31), 2 ** 31 - 1, reject)),
  u32: (v, reject) => Uint32Array.from(integers(v, 0, 2 ** 32 - 1, reject)),
  bool: (v) => Uint32Array.from(v, (x) => (x !== 0 ? 1 : 0)),
};

export const DECODE: { readonly [D in DType]: (bytes: ArrayBuffer) => HostArray } = {
  f32: (b) => new Float32Array(b),
  f16: () => {
    throw new Error("f16 entry slots are not supported (the act arena holds 32-bit words)");
  },
  i32: (b) => new Int32Array(b),
  u32: (b) => new Uint32Array(b),
  bool: (b) => new Uint32Array(b),
};
