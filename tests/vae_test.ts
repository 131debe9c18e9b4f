/**
 * The VAE spec: its entries trace to the latent grid and back, a config the convs cannot walk is
 * refused by name, and a few gradient steps in the reference interpreter lower its loss.
 */
import assert from "node:assert/strict";
import { grad, interpret } from "../compiler/mod.ts";
import { initParams } from "../runtime/mod.ts";
import { trace } from "../spec/mod.ts";
import { checkVaeConfig, latentShape, type VaeConfig } from "../spec/vae/mod.ts";
import vae from "../examples/vae.ts";

const TINY = { size: 8, widths: [4, 6], latentChannels: 2 };

Deno.test("the VAE's encode and decode entries meet at the latent grid", () => {
  const enc = trace(vae, { config: TINY, dims: { batch: 3 }, entry: "encode" });
  assert.deepEqual(enc.outputs.mean!.shape, [3, 2, 2, 2]);
  assert.deepEqual(enc.outputs.logvar!.shape, [3, 2, 2, 2]);
  const dec = trace(vae, { config: TINY, dims: { batch: 3 }, entry: "decode" });
  assert.deepEqual(dec.inputs[0]!.shape, [3, 2, 2, 2]);
  assert.deepEqual(dec.outputs.image!.shape, [3, 8, 8, 1]);
  const full = trace(vae, { dims: { batch: 2 }, entry: "encode" });
  assert.deepEqual(full.outputs.mean!.shape, [2, 7, 7, 4], "MNIST: 28 -> 7x7x4");
});

Deno.test("a VAE config whose side does not halve per level is refused, naming the values", () => {
  const c = { size: 28, channels: 1, widths: [8, 8, 8], latentChannels: 4, klWeight: 1, initStd: 0.1 };
  assert.throws(
    () => checkVaeConfig(c as VaeConfig, "here"),
    /here: size = 28 must be divisible by 2\^3 = 8/,
  );
  assert.deepEqual(latentShape({ ...c, widths: [8, 8] } as VaeConfig), [7, 7, 4]);
});

Deno.test("gradient descent in the interpreter lowers the VAE loss", () => {
  const t = trace(vae, { config: TINY, dims: { batch: 2 } });
  let offset = 0;
  const layout = t.params.map((p) => {
    const l = { ...p.decl, path: p.path, offset };
    offset += p.decl.shape.reduce((a, b) => a * b, 1);
    return l;
  });
  const flat = initParams(layout as never, offset, 3);
  const params = Object.fromEntries(layout.map((l) => {
    const n = l.shape.reduce((a, b) => a * b, 1);
    return [l.path, Array.from(flat.subarray(l.offset, l.offset + n))];
  }));
  const inputs = Object.fromEntries(t.inputs.map((n) => {
    const size = n.shape.reduce((a, b) => a * b, 1);
    return [n.arg.name, Array.from({ length: size }, (_, i) => 0.5 + 0.5 * Math.sin(i * 0.9))];
  }));
  const loss = t.outputs.loss!;
  const grads = grad(loss, t.params.map((p) => p.node));
  const lossNow = () => interpret([loss], { params, inputs })[0]!.data[0]!;
  const first = lossNow();
  for (let step = 0; step < 20; step++) {
    const gs = interpret(grads, { params, inputs });
    t.params.forEach((p, k) => {
      const w = params[p.path]!;
      const g = gs[k]!.data;
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.02 * g[i]!;
    });
  }
  const last = lossNow();
  console.log(`VAE loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  assert.ok(last < 0.7 * first, `loss ${first} -> ${last}: did not fall by 30%`);
});
