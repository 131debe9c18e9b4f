/**
 * Every zod-validated option, once: a bad value of each Transfusion config key (as `--set` gives
 * it: dotted key, JSON value) and of each `training` option (as a spec gives it) is refused with a
 * message that names the key, the value as given and what is allowed. The table is checked against
 * the schema's own keys, so a key added without a case here fails the test.
 */
import assert from "node:assert/strict";
import demo from "../examples/transfusion_demo.ts";
import { resolveConfig } from "../spec/config.ts";
import { transfusion } from "../spec/transfusion/mod.ts";
import { resolveRunConfig } from "../runtime/train/bindings.ts";

/** A bad value per dotted key, and a phrase of what the message must say is allowed. */
const BAD: Record<string, readonly [unknown, RegExp]> = {
  "backbone.dim": [-16, /must be an integer in \[4, 65536\]/],
  "backbone.depth": [0, /must be an integer in \[1, 1024\]/],
  "backbone.heads": [3, /must divide backbone\.dim = 64/],
  "backbone.mlp": ["relu", /must be one of "swiglu", "gelu"/],
  "backbone.hidden": [1.5, /must be an integer in \[1, 1048576\]/],
  "backbone.norm": ["batchnorm", /must be one of "rmsnorm", "layernorm"/],
  "backbone.normEps": [0, /must be a number in \(0, 1\]/],
  "backbone.initStd": [-1, /must be a number in \(0, 10\]/],
  "backbone.ropeBase": ["big", /must be a number in \(1, 1000000000000\]/],
  "text.vocab": [10, /must be 260 \(EOS pads\) or 261 \(PAD token\)/],
  "text.captionLength": [0, /must be an integer in \[1, 65536\]/],
  "image.size": [16.5, /must be an integer in \[1, 4096\]/],
  "image.channels": [65, /must be an integer in \[1, 64\]/],
  "image.patch": [5, /must divide image\.size = 16/],
  "image.imagesPerRow": [0, /must be an integer in \[1, 64\]/],
  "image.encoder": ["conv", /must be one of "linear", "unet", "mlp"/],
  "image.unetWidths": [[], /must list at least one width/],
  "image.positions": ["alibi", /must be one of "rope2d", "learned"/],
  "image.timestep": ["film", /must be one of "add", "adanorm"/],
  "image.timestepDim": [1, /must be an integer in \[2, 65536\]/],
  "diffusion.schedule": ["sigmoid", /must be one of "cosine", "linear", "flow"/],
  "diffusion.T": [0, /must be an integer in \[1, 1000000\]/],
  "diffusion.target": ["velocity", /must be "eps", "v" or "x0" with a DDPM schedule/],
  "diffusion.noiseLimit": [2000, /must be <= diffusion\.T = 1000/],
  "diffusion.condDropout": [1.5, /must be a number in \[0, 1\]/],
  "loss.lambda": [-1, /must be a number in \[0, 1000000\]/],
  "loss.averaging": ["per-pixel", /must be one of "per-image"/],
  "loss.boiTarget": ["yes", /must be true or false/],
  "precision.storage": ["f8", /must be one of "f32", "f16"/],
  "precision.lossScale": [3, /must be a power of two in \[1, 16777216\]/],
  "seq": [2, /must be >= 1 \+ captionLength 22 \+ 1 \* \(16 patches \+ 2\) = 41/],
};

/** The dotted keys of a resolved config (arrays are leaves). */
function dottedKeys(x: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(x).flatMap(([k, v]) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? dottedKeys(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`]
  );
}

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof Error && e.name === "SpecError", `a SpecError, got ${e}`);
    return e.message;
  }
  assert.fail("accepted");
};

Deno.test("every config key: a bad --set value is named with the value given and what is allowed", async (t) => {
  const defaults = resolveConfig(demo.config as never, {}, "demo") as Record<string, unknown>;
  const withPrecision = { ...defaults, precision: { storage: "f16", lossScale: 1024 } };
  assert.deepEqual(Object.keys(BAD).sort(), dottedKeys(withPrecision).sort(), "one case per config key");
  for (const [key, [value, allowed]] of Object.entries(BAD)) {
    await t.step(`${key}=${JSON.stringify(value)}`, () => {
      // The CLI's path: run bindings nest the dotted override into the spec's defaults.
      const message = refusal(() => resolveRunConfig(demo, { [key]: value }, undefined));
      assert.ok(
        message.includes(`config "${key}" = ${JSON.stringify(value)}: `),
        `names the key and the value: ${message}`,
      );
      assert.match(message, allowed);
      assert.doesNotMatch(message, /undefined/);
      // The dotted form straight into the schema says the same.
      assert.match(refusal(() => resolveConfig(demo.config as never, { [key]: value }, "demo")), allowed);
    });
  }
});

Deno.test("an unknown key lists the keys of its group, at the top level too", async (t) => {
  const cases: [string, RegExp][] = [
    [
      "backbon.dim",
      /unknown config key\(s\) "backbon"; known keys: backbone, text, image, diffusion, loss, precision, row, seq/,
    ],
    [
      "precision.storagee",
      /unknown config key\(s\) "storagee" in "precision"; known keys: storage, lossScale/,
    ],
    ["depth", /unknown config key\(s\) "depth"; known keys: backbone, text/],
  ];
  for (const [key, pattern] of cases) {
    await t.step(
      key,
      () => assert.match(refusal(() => resolveConfig(demo.config as never, { [key]: 1 }, "x")), pattern),
    );
  }
  await t.step("a nested group's unknown field (the run bindings' check)", () => {
    assert.throws(
      () => resolveRunConfig(demo, { "backbone.dimm": 3 }, undefined),
      /unknown config key "backbone\.dimm"; backbone has keys: dim, depth, heads/,
    );
  });
  await t.step("a plain-defaults config", () => {
    const message = refusal(() => resolveConfig({ dim: 4, hidden: 16 }, { width: 3 }, "x"));
    assert.match(message, /unknown config key\(s\) "width"; known keys: dim, hidden/);
  });
});

Deno.test("every training option of a spec: a bad value is named with what is allowed", async (t) => {
  const cases: Record<string, readonly [unknown, RegExp]> = {
    steps: [0, /must be an integer >= 1/],
    batch: [2.5, /must be an integer >= 1/],
    lr: [20, /must be a number in \[0, 10\]/],
    warmup: [-1, /must be an integer >= 0/],
    lrFloor: [-1, /must be a number in \[0, 10\]/],
    beta1: [1, /must be a number >= 0 and < 1/],
    beta2: ["0.9", /must be a number >= 0 and < 1/],
    eps: [0, /must be a number in \(0, 1\]/],
    weightDecay: [11, /must be a number in \[0, 10\]/],
    clip: [-1, /must be a number >= 0/],
  };
  for (const [key, [value, allowed]] of Object.entries(cases)) {
    await t.step(`training.${key}=${JSON.stringify(value)}`, () => {
      const message = refusal(() => transfusion({ training: { [key]: value } } as never));
      assert.ok(message.includes(`option "training.${key}" = ${JSON.stringify(value)}: `), message);
      assert.match(message, allowed);
    });
  }
  await t.step("an option of the spec itself, with the default it was checked against", () => {
    const message = refusal(() => transfusion({ backbone: { dim: 20 } }));
    assert.match(
      message,
      /option "backbone\.heads" = 4 \(default\): gives a head dim of 5; rope2d needs a multiple of 4/,
    );
  });
});
