/**
 * Arena offsets as a uniform (compiler/lower/arena_offsets.ts): kernels that differ only in where
 * their tensors live are one WGSL text, the executor builds one pipeline for them, and each
 * dispatch still reads and writes its own tensors: that is what every GPU test against the
 * interpreter checks (tests/transfusion_test.ts's train step, tests/transfusion_cache_test.ts's
 * cached entries over two layers, the conformance table).
 */
import assert from "node:assert/strict";
import { arenaIndex } from "../compiler/lower/arena_offsets.ts";
import { alignedVectorIndex, arenaOffset, bindArenaOffsets } from "../kernels/arena_offsets.ts";
import { element } from "../kernels/wgsl.ts";
import { compile } from "../compiler/mod.ts";
import type { AnyModel } from "../spec/mod.ts";
import { transfusion } from "../spec/transfusion/mod.ts";
import { Executor } from "../runtime/mod.ts";

Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.set("XDG_RUNTIME_DIR", "/tmp/xdg");

Deno.test("offset markers become reads of the offsets uniform, one per distinct offset in order of use", () => {
  const text = (a: number, b: number) =>
    `enable f16;\nfn f(i: u32) -> u32 { return ${arenaIndex(a, "i")} + ${arenaIndex(b, "(i * 4u + 7u)")} + ${
      arenaIndex(a, "i")
    }; }\n@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n  f(id.x);\n}`;
  const one = bindArenaOffsets(text(100, 2000), 3);
  const two = bindArenaOffsets(text(5100, 9000), 3);
  assert.equal(one.wgsl, two.wgsl, "two layers' kernels are one text");
  // 4 of the trailing 7 moved into the second offset; 3 stays, so the offset stays a multiple of 4.
  assert.deepEqual(one.offsets, [100, 2004]);
  assert.deepEqual(two.offsets, [5100, 9004]);
  assert.ok(
    one.wgsl.startsWith(
      "enable f16;\n@group(0) @binding(3) var<uniform> arena_offsets: array<vec4<u32>, 1>;\n" +
        "var<private> ao0: u32;\nvar<private> ao1: u32;\n",
    ),
  );
  assert.match(one.wgsl, /return \(ao0 \+ i\) \+ \(ao1 \+ i \* 4u \+ 3u\) \+ \(ao0 \+ i\)/);
  // The entry point copies the uniform first.
  assert.match(
    one.wgsl,
    /fn main\([^{]*\{\n {2}ao0 = arena_offsets\[0\]\.x;\n {2}ao1 = arena_offsets\[0\]\.y;\n {2}f\(id\.x\);/,
  );
  assert.doesNotMatch(one.wgsl, /⟨/);
  // Five distinct offsets need two vec4s; the fifth is .x of the second.
  const five = bindArenaOffsets(`${[1, 2, 3, 4, 5].map((o) => arenaOffset(o)).join(" ")}\nfn main() {\n}`, 0);
  assert.match(five.wgsl, /array<vec4<u32>, 2>/);
  assert.match(five.wgsl, /ao4 = arena_offsets\[1\]\.x;/);
  assert.throws(() => bindArenaOffsets(arenaOffset(3), 0), /no `fn main`/);
  // No markers: the text as it was, nothing bound.
  assert.deepEqual(bindArenaOffsets("fn g() {}", 0), { wgsl: "fn g() {}", offsets: [] });
});

Deno.test("arenaIndex moves only a top-level trailing constant", () => {
  assert.equal(arenaIndex(12, "5u"), `(${arenaOffset(16)} + 1u)`);
  assert.equal(arenaIndex(12, "(a + b + 8u)"), `(${arenaOffset(20)} + a + b)`);
  assert.equal(arenaIndex(12, "(a + b + 6u)"), `(${arenaOffset(16)} + a + b + 2u)`);
  // `(a + 1u) * (b + 2u)`: the 2 is inside a product, not a term of the sum.
  assert.equal(arenaIndex(10, "(a + 1u) * (b + 2u)"), `(${arenaOffset(10)} + (a + 1u) * (b + 2u))`);
  assert.equal(arenaIndex(0, "i"), `(${arenaOffset(0)} + i)`);
  assert.throws(() => arenaOffset(-1), /u32 word count, got -1/);
});

Deno.test("a vec4 buffer's aligned offset is counted in vec4s, so the lane stays the index's own", () => {
  const index = arenaIndex(400, "(col * 4u + 1u)");
  assert.deepEqual(alignedVectorIndex(index), {
    vector: `${arenaOffset(100)} + ((col * 4u + 1u) >> 2u)`,
    lane: "(col * 4u + 1u) & 3u",
  });
  assert.equal(
    element("act", index, true),
    `act[${arenaOffset(100)} + ((col * 4u + 1u) >> 2u)][(col * 4u + 1u) & 3u]`,
  );
  // An offset that is not a multiple of 4 (a slice) splits at run time, as before.
  assert.equal(alignedVectorIndex(`(${arenaOffset(6)} + i)`), undefined);
  assert.equal(
    element("act", `(${arenaOffset(6)} + i)`, true),
    `act[((${arenaOffset(6)} + i)) >> 2u][((${arenaOffset(6)} + i)) & 3u]`,
  );
  // Not one sum with the offset first: unchanged.
  assert.equal(alignedVectorIndex(`(${arenaOffset(8)} + a) * (b)`), undefined);
});

const DEPTH = 3;
const small = transfusion({
  name: "shared_pipelines",
  backbone: { dim: 32, depth: DEPTH, heads: 2, hidden: 64 },
  text: { vocab: 261, captionLength: 6 },
  image: { size: 8, channels: 1, patch: 2, imagesPerRow: 1, encoder: "linear", positions: "rope2d" },
  diffusion: { schedule: "cosine", T: 1000, target: "eps", noiseLimit: 500, condDropout: 0 },
  seq: 32,
  batch: 2,
}) as AnyModel;

Deno.test("a model's layers share pipelines: one per distinct WGSL text", async () => {
  const plan = compile(small, { entries: ["loss", "prefill", "decode", "denoise_span"] });
  const executor = await Executor.create(plan, { seed: 3 });
  try {
    const { pipelines } = executor.stats();
    assert.equal(pipelines, new Set(plan.kernels.map((k) => k.wgsl)).size);
    // Every layer brings about a dozen kernels; with three identical layers most are shared.
    assert.ok(
      pipelines < 0.6 * plan.kernels.length,
      `${pipelines} pipelines for ${plan.kernels.length} kernels of ${DEPTH} layers`,
    );
    assert.ok(plan.kernels.some((k) => (k.offsets?.length ?? 0) > 0), "lowered kernels bind offsets");
  } finally {
    executor.destroy();
  }
});
