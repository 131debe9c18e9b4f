/**
 * The roofline in `explain`: per kernel, intensity = FLOP / byte and the bound
 * max(FLOP / peak rate, bytes / peak bandwidth); per step, the sum over dispatches. The numbers are
 * worked out by hand here, on stated kernels and on a two-kernel plan whose costs follow from the
 * shapes (a matmul reads A and B and writes C; an add reads two tensors and writes one).
 */
import assert from "node:assert/strict";
import { compileGraph } from "../compiler/compile.ts";
import { node } from "../compiler/ir/mod.ts";
import {
  boundByOp,
  dominant,
  explainText,
  kernelBound,
  measuredEntry,
  measuredText,
  opsText,
  peakFrom,
  PEAKS,
  roofline,
  summarize,
} from "../cli/explain.ts";

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.abs(b), `${what}: ${a} vs ${b}`);

Deno.test("kernelBound: the slower of compute and memory time at the stated peaks", () => {
  const peak = { name: "test", gflops: 10, gbs: 5 };
  // 1 GFLOP at 10 GFLOP/s = 100 ms; 0.1 GB at 5 GB/s = 20 ms.
  const compute = kernelBound({ name: "a", ops: ["matmul"], flops: 1e9, bytes: 1e8 }, peak);
  close(compute.boundMs, 100, "compute-bound time");
  close(compute.intensity, 10, "intensity");
  assert.equal(compute.limit, "compute");
  // 1 MFLOP = 0.1 ms; 40 MB at 5 GB/s = 8 ms.
  const memory = kernelBound({ name: "b", ops: ["add"], flops: 1e6, bytes: 4e7 }, peak);
  close(memory.boundMs, 8, "memory-bound time");
  close(memory.intensity, 0.025, "intensity");
  assert.equal(memory.limit, "memory");
});

Deno.test("roofline of a two-kernel plan, totals and the dominant kernel, by hand", () => {
  const param = (path: string, shape: number[]) => node("param", [], { path, shape, dtype: "f32" });
  const product = node("matmul", [param("a", [4, 8]), param("b", [8, 2])], null);
  const sum = node("add", [param("x", [4, 8]), param("y", [4, 8])], null);
  const plan = compileGraph({ product, sum }, { fuse: true });
  const peak = { name: "unit", gflops: 1, gbs: 1 }; // 1e6 FLOP or 1e6 bytes per ms
  const r = roofline(plan, peak, "forward");
  assert.equal(r.kernels.length, 2);
  const byOp = (flops: number) => r.kernels.find((k) => k.flops === flops)!;
  // matmul: 2*4*8*2 = 128 FLOP; bytes 4*(4*8 + 8*2 + 4*2) = 224 -> 224e-6 ms, memory-bound.
  const mm = byOp(128);
  assert.equal(mm.bytes, 224);
  close(mm.intensity, 128 / 224, "matmul intensity");
  close(mm.boundMs, 224e-6, "matmul bound");
  // add: 32 FLOP; bytes 4*(32 + 32 + 32) = 384 -> 384e-6 ms.
  const add = byOp(32);
  assert.equal(add.bytes, 384);
  close(add.boundMs, 384e-6, "add bound");
  close(r.totalMs, 608e-6, "total bound");
  close(r.memoryBoundMs, 608e-6, "all memory-bound");
  assert.equal(r.computeBoundMs, 0);
  close(r.ridge, 1, "ridge");
  assert.deepEqual(dominant(r, 1).map((k) => k.flops), [32]);
  assert.deepEqual(boundByOp(r).map(([op]) => op), ["add", "matmul"]);
  close(boundByOp(r)[0]![1], 384e-6, "add's share");
  // A fast-memory roof turns the matmul compute-bound: 128 FLOP at 1 GFLOP/s vs 224 B at 1000 GB/s.
  const fast = roofline(plan, { name: "fast", gflops: 1, gbs: 1000 }, "forward");
  assert.equal(fast.kernels.find((k) => k.flops === 128)!.limit, "compute");
  close(fast.totalMs, 128e-6 + 32e-6, "compute-bound total");
});

Deno.test("explain prints the roofline, and --json carries the bound per step", () => {
  const a = node("param", [], { path: "a", shape: [16, 16], dtype: "f32" });
  const plan = compileGraph({ y: node("matmul", [a, a], null) });
  const text = explainText(plan, PEAKS.h100);
  assert.match(text, /roofline at h100.*67000 GFLOP\/s, 3350 GB\/s/);
  assert.match(text, /AI +\d+\.\d\d bound/);
  assert.match(text, /by kind: matmul 100\.0%/);
  assert.match(text, /dominant kernels:\n {4}f0_matmul/);
  const s = summarize(plan, PEAKS.h100);
  close(s.roofline.bound_ms_per_step, roofline(plan, PEAKS.h100).totalMs, "json bound");
  assert.equal(summarize(plan).roofline.peak_gflops, PEAKS.cpu.gflops);
});

Deno.test("peakFrom: presets, overrides, and refusals", () => {
  assert.equal(peakFrom("h100").gbs, 3350);
  const custom = peakFrom("cpu", "20", "2.5");
  assert.deepEqual([custom.gflops, custom.gbs], [20, 2.5]);
  assert.throws(() => peakFrom("tpu"), /--peak must be one of cpu, h100/);
  assert.throws(() => peakFrom("cpu", "-1"), /--peak-gflops must be a positive number/);
});

Deno.test("opsText: a few ops as they are, a long list as counts in order of first appearance", () => {
  assert.equal(opsText(["matmul", "add", "mul"]), "matmul,add,mul");
  const rope = ["concat", ...Array.from({ length: 20 }, (_, i) => (i % 2 ? "sin" : "mul")), "add"];
  assert.equal(opsText(rope), "22 ops: concat,mulx10,sinx10,add");
});

Deno.test("measured column: per kernel index beside its bound, a kernel dispatched twice counted twice", () => {
  const param = (path: string, shape: number[]) => node("param", [], { path, shape, dtype: "f32" });
  const product = node("matmul", [param("a", [4, 8]), param("b", [8, 2])], null);
  const sum = node("add", [param("x", [4, 8]), param("y", [4, 8])], null);
  const compiled = compileGraph({ product, sum }, { fuse: true });
  const forward = compiled.entries.forward!;
  const first = forward.steps.find((s) => s.kind === "dispatch")!;
  assert.ok(first.kind === "dispatch");
  // The first kernel dispatched a second time at the end of the step.
  const plan = { ...compiled, entries: { forward: { ...forward, steps: [...forward.steps, first] } } };
  const other = forward.steps.find((s) => s.kind === "dispatch" && s.kernel !== first.kernel)!;
  assert.ok(other.kind === "dispatch");
  const peak = { name: "unit", gflops: 1, gbs: 1 };
  const measuredUs = new Map([[first.kernel, 3000], [other.kernel, 500]]);
  const m = measuredEntry(plan, "forward", peak, measuredUs, { timing: "timestamp-query", steps: 3 });
  assert.deepEqual(m.kernels.map((k) => [k.kernel, k.dispatches, k.measuredMs]), [
    [first.kernel, 2, 3],
    [other.kernel, 1, 0.5],
  ]);
  const bound = (k: number) => kernelBound(plan.kernels[k]!, peak).boundMs;
  close(m.kernels[0]!.boundMs, 2 * bound(first.kernel), "twice the bound of one dispatch");
  close(m.kernels[1]!.boundMs, bound(other.kernel), "bound");
  close(m.totalMeasuredMs, 3.5, "total measured");
  close(m.totalBoundMs, roofline(plan, peak, "forward").totalMs, "total bound is the roofline's");
  const text = measuredText(m, peak).join("\n");
  const name = plan.kernels[first.kernel]!.name;
  assert.match(text, /median of 3 profiled steps\) vs bound at unit/);
  assert.match(text, new RegExp(`${name} +2 +[\\d.]+us +3\\.00ms +\\d+\\.\\dx`));
  assert.match(text, /total: measured 3\.50ms vs bound [\d.]+us \(\d+\.\dx\) over 2 kernels/);
  assert.match(measuredText(m, peak, 1).join("\n"), /\.\.\. 1 more kernels/);
  assert.throws(
    () => measuredEntry(plan, "forward", peak, new Map([[first.kernel, 1]]), { timing: "host", steps: 1 }),
    new RegExp(`no measured time for kernel ${other.kernel} of entry "forward"`),
  );
});
