/**
 * The "unet" patch codec is convolutional: shapes through encoder and decoder, an output patch that
 * depends on its neighbour's pixels (where the per-patch "mlp" codec provably does not), and a short
 * reconstruction run in the reference interpreter whose loss falls.
 */
import assert from "node:assert/strict";
import { grad, interpret, type Node } from "../compiler/mod.ts";
import { initParams } from "../runtime/mod.ts";
import { input, model, trace } from "../spec/mod.ts";
import { patchDecoder, patchEncoder } from "../spec/transfusion/encoder.ts";
import { unetPlan } from "../spec/transfusion/unet.ts";
import type { BackboneConfig, ImageConfig } from "../spec/transfusion/config.ts";
import type { Tensor } from "../spec/tensor.ts";

type T3 = Tensor<"f32", 3>;
const DIM = 8;
const BACKBONE = { dim: DIM, initStd: 0.3 } as BackboneConfig;

/** rows [B, P, K] -> codec out [B, P, K] (temb a learned-free input), its loss picked by `loss`. */
function codecModel(image: ImageConfig, loss: "patch0" | "reconstruct") {
  const grid = image.size / image.patch;
  const [P, K] = [grid * grid, image.channels * image.patch * image.patch];
  return model({
    name: `codec_${image.encoder}`,
    config: {},
    dims: { batch: 2 },
    params: () => ({
      enc: patchEncoder(BACKBONE, image, K),
      dec: patchDecoder(BACKBONE, image, K),
    }),
    inputs: () => ({ rows: input("f32", ["batch", P, K]), temb: input("f32", ["batch", P, DIM]) }),
    loss: (p, { rows, temb }) => {
      const { vectors, skips } = p.enc(rows as T3, temb as T3);
      assert.deepEqual(vectors.shape, [2, P, DIM], "one transformer-width vector per patch");
      const out = p.dec(vectors, skips, temb as T3);
      assert.deepEqual(out.shape, [2, P, K], "the decoder gives back patch rows");
      return {
        loss: loss === "patch0" ? out.slice(1, 0, 1).sum() : out.sub(rows).square().mean(),
      };
    },
  });
}

const image = (over: Partial<ImageConfig>): ImageConfig =>
  ({ size: 8, channels: 2, patch: 2, unetWidths: [4, 6], encoder: "unet", ...over }) as ImageConfig;

function setup(img: ImageConfig, loss: "patch0" | "reconstruct") {
  const t = trace(codecModel(img, loss));
  let offset = 0;
  const layout = t.params.map((p) => {
    const l = { ...p.decl, path: p.path, offset };
    offset += p.decl.shape.reduce((a, b) => a * b, 1);
    return l;
  });
  const flat = initParams(layout as never, offset, 7);
  const params = Object.fromEntries(layout.map((l) => {
    const n = l.shape.reduce((a, b) => a * b, 1);
    return [l.path, Array.from(flat.subarray(l.offset, l.offset + n))];
  }));
  const inputs = Object.fromEntries(t.inputs.map((n) => {
    const size = n.shape.reduce((a, b) => a * b, 1);
    return [n.arg.name, Array.from({ length: size }, (_, i) => Math.sin(i * 1.7 + 0.3))];
  }));
  return { t, params, inputs };
}

Deno.test("unetPlan pools by 2 while the patch factor allows, folds the rest into channels", () => {
  assert.deepEqual(unetPlan(image({ patch: 4, unetWidths: [4, 6] })), { pools: [true, true], fold: 1 });
  assert.deepEqual(unetPlan(image({ patch: 2, unetWidths: [4, 6] })), { pools: [true, false], fold: 1 });
  assert.deepEqual(unetPlan(image({ patch: 8, unetWidths: [4] })), { pools: [true], fold: 4 });
  assert.deepEqual(unetPlan(image({ patch: 3, size: 9, unetWidths: [4] })), { pools: [false], fold: 3 });
});

Deno.test("the unet codec traces to patch rows for several patch/level layouts", () => {
  for (
    const over of [{ patch: 2 }, { patch: 4, unetWidths: [4] }, { patch: 4 }, { patch: 8, unetWidths: [3] }]
  ) {
    const t = trace(codecModel(image(over), "reconstruct"));
    assert.ok(t.params.some((p) => p.path.includes("stem")), "a conv stem");
    assert.deepEqual(t.outputs.loss!.shape, []);
  }
});

/** d(sum of patch 0 of image 0's output) / d(pixels of patch 1, its right-hand neighbour). */
function neighbourGradient(img: ImageConfig): number[] {
  const { t, params, inputs } = setup(img, "patch0");
  const rows = t.inputs.find((n) => n.arg.name === "rows")! as Node;
  const [g] = interpret(grad(t.outputs.loss!, [rows]), { params, inputs });
  const K = img.channels * img.patch * img.patch;
  return Array.from(g!.data.slice(K, 2 * K));
}

Deno.test("a unet output patch depends on its neighbour's pixels; an mlp one does not", () => {
  const unet = neighbourGradient(image({}));
  assert.ok(unet.some((v) => Math.abs(v) > 1e-6), `unet: gradient into patch 1 is ${unet}`);
  // The mlp codec mixes inside a patch only: the same probe reads exactly zero, which shows the
  // probe can fail (any cross-patch path would show up here).
  const mlp = neighbourGradient(image({ encoder: "mlp" }));
  assert.ok(mlp.every((v) => v === 0), `mlp: gradient into patch 1 is ${mlp}`);
});

Deno.test("gradient descent on the unet codec's reconstruction loss lowers it", () => {
  const { t, params, inputs } = setup(image({}), "reconstruct");
  const loss = t.outputs.loss!;
  const grads = grad(loss, t.params.map((p) => p.node));
  const lossNow = () => interpret([loss], { params, inputs })[0]!.data[0]!;
  const first = lossNow();
  for (let step = 0; step < 12; step++) {
    const gs = interpret(grads, { params, inputs });
    t.params.forEach((p, k) => {
      const w = params[p.path]!;
      const g = gs[k]!.data;
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.05 * g[i]!;
    });
  }
  const last = lossNow();
  console.log(`unet codec reconstruction loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  assert.ok(last < 0.8 * first, `loss ${first} -> ${last}: did not fall by 20%`);
});
