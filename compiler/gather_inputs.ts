/**
 * A plan pass for device-resident data (spec/data.ts `DeviceData`): entry `entry` stops taking the
 * gathered inputs from the host and assembles them itself, first thing, from tables in buffers of
 * role "data" (`data_<table>`, filled once by the runtime: Executor.setData). In exchange it takes
 * one small input per gathered one, `<input>.rows` i32 [R, 3], placed past the end of the arena
 * that holds the input, so nothing the memory plan placed can overlap it.
 *
 *   before: host writes images [B, N, C, H, W] (B*N*C*H*W words) every step
 *   after:  host writes images.rows [B*N, 3]; kernel gather_images fills images in place
 *
 * The result is still a plain plan: the executor runs the gather like any other dispatch.
 */
import type { ImageGather } from "../spec/data.ts";
import { imageGatherKernel } from "../kernels/image_gather.ts";
import type { BufferSpec, Plan, TensorSlot } from "./plan.ts";

/** The rows input that replaces gathered input `input`. */
export const rowsInputName = (input: string): string => `${input}.rows`;
/** The buffer holding table `table`. */
export const tableBufferName = (table: string): string => `data_${table}`;

export function gatherInputs(
  plan: Plan,
  entry: string,
  gathers: readonly ImageGather[],
  tables: Readonly<Record<string, { readonly length: number }>>,
  maxBindingBytes: number,
): Plan {
  const e = plan.entries[entry];
  if (!e) throw new Error(`gatherInputs: plan "${plan.model}" has no entry "${entry}"`);
  const buffers = new Map<string, BufferSpec>(plan.buffers.map((b) => [b.name, b]));
  const kernels = [...plan.kernels];
  let inputs: TensorSlot[] = [...e.inputs];
  const prologue: number[] = [];
  for (const g of gathers) {
    const where = `gatherInputs: input "${g.input}" of entry "${entry}"`;
    const slot = inputs.find((s) => s.name === g.input);
    if (!slot) {
      throw new Error(`${where} does not exist; inputs: ${e.inputs.map((s) => s.name).join(", ")}`);
    }
    const frame = [g.channels, g.size, g.size];
    if (slot.dtype !== "f32" || slot.shape.length < 3 || slot.shape.slice(-3).join() !== frame.join()) {
      throw new Error(`${where} is ${slot.dtype}[${slot.shape}]; the gather makes f32 [..., ${frame}]`);
    }
    const table = tables[g.table];
    const src = g.srcSide * g.srcSide;
    if (!table || table.length === 0 || table.length % src !== 0) {
      throw new Error(
        `${where}: table "${g.table}" ${
          table ? `has ${table.length} values, not rows of ${src}` : "is missing"
        }`,
      );
    }
    const images = slot.shape.slice(0, -3).reduce((a, b) => a * b, 1);
    const arena = buffers.get(slot.buffer)!;
    const rowsOffset = Math.ceil(arena.bytes / 16) * 4; // 16-byte aligned, past everything planned
    const bytes = 4 * (rowsOffset + 3 * images);
    if (bytes > maxBindingBytes) {
      throw new Error(
        `${where}: arena "${slot.buffer}" would grow to ${bytes} bytes, past ${maxBindingBytes}`,
      );
    }
    buffers.set(slot.buffer, { ...arena, bytes });
    const tableBuffer = tableBufferName(g.table);
    const tableBytes = 4 * table.length;
    if (tableBytes > maxBindingBytes) {
      throw new Error(
        `${where}: table "${g.table}" is ${tableBytes} bytes, past one binding (${maxBindingBytes})`,
      );
    }
    buffers.set(tableBuffer, { name: tableBuffer, role: "data", bytes: tableBytes });
    prologue.push(kernels.length);
    kernels.push(imageGatherKernel(g, {
      images,
      tableRows: table.length / src,
      tableBuffer,
      arena: slot.buffer,
      rowsOffset,
      outOffset: slot.offset,
    }));
    inputs = inputs.filter((s) => s !== slot);
    inputs.push({
      name: rowsInputName(g.input),
      shape: [images, 3],
      dtype: "i32",
      buffer: slot.buffer,
      offset: rowsOffset,
    });
  }
  const added = prologue.map((k) => kernels[k]!.flops).reduce((a, b) => a + b, 0);
  return {
    ...plan,
    buffers: [...buffers.values()],
    kernels,
    entries: {
      ...plan.entries,
      [entry]: {
        ...e,
        inputs,
        steps: [...prologue.map((kernel) => ({ kind: "dispatch" as const, kernel })), ...e.steps],
        flops: e.flops + added,
      },
    },
  };
}
