/**
 * The peer benchmark harnesses (bench/peers) load their library on this machine, run on the device
 * they claim, and compute the right matmul: each peer's product on shapes that fit no tile is checked
 * against a plain f64 matmul, and its timing path returns a positive GFLOP/s. A peer that cannot load
 * fails here with its reason; nothing is skipped.
 */
import assert from "node:assert/strict";
import {
  jaxMatmulGflops,
  peerMatmul,
  type PeerMatmulShape,
  type PeerName,
  tfjsMatmulGflops,
} from "../bench/peers/mod.ts";
import { uniformStream } from "../bench/peers/t1_inputs.ts";

const PEERS: readonly PeerName[] = ["tfjs-webgpu", "jax-webgpu", "jax-wasm"];

function operands(shape: PeerMatmulShape, seed: number): { a: Float32Array; b: Float32Array } {
  const next = uniformStream(seed);
  const batch = shape.batch ?? 1;
  const fill = (n: number) => Float32Array.from({ length: n }, () => next() * 2 - 1);
  return { a: fill(batch * shape.m * shape.k), b: fill(batch * shape.k * shape.n) };
}

/** Plain row-major batched matmul in f64. */
function referenceMatmul(a: Float32Array, b: Float32Array, s: PeerMatmulShape): Float64Array {
  const batch = s.batch ?? 1;
  const c = new Float64Array(batch * s.m * s.n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < s.m; i++) {
      for (let j = 0; j < s.n; j++) {
        let sum = 0;
        for (let l = 0; l < s.k; l++) sum += a[(p * s.m + i) * s.k + l]! * b[(p * s.k + l) * s.n + j]!;
        c[(p * s.m + i) * s.n + j] = sum;
      }
    }
  }
  return c;
}

function assertClose(actual: Float32Array, expected: Float64Array, what: string): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: ${actual.length} values, expected ${expected.length}`,
  );
  for (let i = 0; i < expected.length; i++) {
    const [x, y] = [actual[i]!, expected[i]!];
    if (!(Math.abs(x - y) <= 1e-4 * (1 + Math.abs(y)))) {
      assert.fail(`${what}: element ${i} is ${x}, the f64 reference gives ${y}`);
    }
  }
}

const SHAPES: readonly PeerMatmulShape[] = [{ m: 37, k: 29, n: 23 }, { batch: 2, m: 5, k: 70, n: 9 }];

Deno.test("peer harnesses compute the reference matmul", async (t) => {
  // One child per peer and shape, all at once: each spends most of its time starting up.
  const cases = PEERS.flatMap((peer) =>
    SHAPES.map((shape, i) => ({ peer, shape, ...operands(shape, 11 + i) }))
  );
  const products = await Promise.all(cases.map((c) => peerMatmul(c.peer, c.a, c.b, c.shape, 120_000)));
  for (const [i, c] of cases.entries()) {
    await t.step(`${c.peer} ${JSON.stringify(c.shape)}`, () => {
      assertClose(products[i]!, referenceMatmul(c.a, c.b, c.shape), c.peer);
    });
  }
});

Deno.test("peer timing paths report a positive GFLOP/s", async (t) => {
  const shape = { m: 64, k: 64, n: 64 };
  const opts = { warmup: 1, runs: 1, timeoutMs: 120_000 };
  const [tfjs, jaxWebgpu, jaxWasm] = await Promise.all([
    tfjsMatmulGflops(shape, opts),
    jaxMatmulGflops(shape, "webgpu", opts),
    jaxMatmulGflops(shape, "wasm", opts),
  ]);
  for (const [name, gflops] of Object.entries({ tfjs, jaxWebgpu, jaxWasm })) {
    await t.step(name, () => assert.ok(Number.isFinite(gflops) && gflops > 0, `${name}: ${gflops} GFLOP/s`));
  }
});
