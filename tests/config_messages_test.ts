/**
 * Every zod-validated option, once: a bad value of each Transfusion config key (as `--set` gives
 * it: dotted key, JSON value) and of each `training` option (as a spec gives it) is refused with a
 * message that names the key, the value as given and what is allowed. The table is checked against
 * the schema's own keys, so a key added without a case here fails the test.
 */
import assert from "node:assert/strict";
import demo from "../examples/transfusion_demo.ts";
import { configKeys, resolveConfig } from "../spec/config.ts";
import { transfusion } from "../spec/transfusion/mod.ts";
import { resolveRunConfig } from "../runtime/train/bindings.ts";
import { closeMatches, editDistance, nearest } from "../spec/suggest.ts";

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

Deno.test("an unknown key lists every dotted key, nearest first, with a did-you-mean", async (t) => {
  const defaults = resolveConfig(demo.config as never, {}, "demo") as Record<string, unknown>;
  // The schema's keys: every key the defaults have, and optional ones (precision, loss.textWeight, ...)
  const all = configKeys(demo.config as never);
  const given = dottedKeys({ ...defaults, precision: { storage: "f16", lossScale: 1024 } });
  assert.deepEqual(given.filter((k) => !all.includes(k)), [], "configKeys has every key of the defaults");
  assert.equal(new Set(all).size, all.length);
  /** The keys the message lists, in its order. */
  const listed = (message: string) => {
    const line = message.split("\n")[0]!;
    return line.slice(line.lastIndexOf(": ") + 2).split(", ");
  };
  const cases: [string, RegExp, string][] = [
    [
      "backbone.dimm",
      /unknown config key "backbone\.dimm" \(did you mean "backbone\.dim"\?\); known keys, nearest first: /,
      "backbone.dim",
    ],
    ["dimm", /unknown config key "dimm" \(did you mean "backbone\.dim"\?\)/, "backbone.dim"],
    ["patch", /unknown config key "patch" \(did you mean "image\.patch"\?\)/, "image.patch"],
    ["image.pach", /unknown config key "image\.pach" \(did you mean "image\.patch"\?\)/, "image.patch"],
    ["precision.storagee", /\(did you mean "precision\.storage"\?\)/, "precision.storage"],
    ["backbon.dim", /unknown config key "backbon\.dim" \(did you mean "backbone\.dim"\?\)/, "backbone.dim"],
    ["backbon", /unknown config key "backbon" \(did you mean a key of "backbone"\?\)/, "backbone.dim"],
    ["backbone.x", /unknown config key "backbone\.x" \("backbone" has no key "x"\)/, "backbone.dim"],
    ["zzzzzz", /unknown config key "zzzzzz"; known keys: backbone\.dim, backbone\.depth, /, "backbone.dim"],
  ];
  for (const [key, pattern, first] of cases) {
    await t.step(`${key} (straight into the schema, and through the run bindings)`, () => {
      for (
        const message of [
          refusal(() => resolveConfig(demo.config as never, { [key]: 1 }, "x")),
          refusal(() => {
            try {
              return resolveRunConfig(demo, { [key]: 1 }, undefined);
            } catch (e) {
              // the bindings' own refusal (a TrainError) says the same; make it comparable
              if (e instanceof Error && e.name === "TrainError") e.name = "SpecError";
              throw e;
            }
          }),
        ]
      ) {
        assert.match(message, pattern);
        assert.equal(listed(message)[0], first, message);
        assert.deepEqual([...listed(message)].sort(), [...all].sort(), "every key is listed once");
      }
    });
  }
  await t.step("a group's keys come first for a misspelt group", () => {
    const order = listed(refusal(() => resolveConfig(demo.config as never, { "imag.size": 1 }, "x")));
    const images = all.filter((k) => k.startsWith("image."));
    assert.deepEqual(order.slice(0, images.length).sort(), [...images].sort());
  });
  await t.step("a value for a group names the group's keys", () => {
    for (
      const message of [
        refusal(() => resolveConfig(demo.config as never, { backbone: 3 }, "x")),
        refusal(() => resolveRunConfig(demo, { backbone: 3 }, undefined)),
      ]
    ) {
      assert.match(
        message,
        /config "backbone" = 3: "backbone" is a group of keys, set one of them \(backbone\.dim, backbone\.depth, .*backbone\.ropeBase\)/,
      );
    }
  });
  await t.step("two unknown keys are both named", () => {
    const message = refusal(() => resolveConfig(demo.config as never, { dimm: 1, sek: 2 }, "x"));
    assert.match(
      message,
      /unknown config keys "dimm" \(did you mean "backbone\.dim"\?\), "sek" \(did you mean "seq"\?\);/,
    );
  });
  await t.step("a plain-defaults config, nested groups included", () => {
    const message = refusal(() => resolveConfig({ dim: 4, hidden: 16 }, { width: 3 }, "x"));
    assert.match(message, /unknown config key "width"; known keys: dim, hidden\n/);
    const nested = { dim: 4, image: { size: 8, channels: 1 } };
    assert.deepEqual(configKeys(nested), ["dim", "image.size", "image.channels"]);
    assert.throws(
      () => resolveRunConfig({ ...demo, config: nested } as never, { "image.sise": 3 }, undefined),
      /unknown config key "image\.sise" \(did you mean "image\.size"\?\); known keys, nearest first: image\.size, /,
    );
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

Deno.test("suggestions: edit distance with swaps, the last dotted segment decides what is close", () => {
  assert.equal(editDistance("stpes", "steps"), 1);
  assert.equal(editDistance("Dim", "dim"), 0);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(nearest("stpes", ["seed", "steps", "out"]), "steps");
  assert.equal(nearest("dimm", ["backbone.depth", "backbone.dim"]), "backbone.dim");
  assert.equal(nearest("backbone.x", ["backbone.dim"]), undefined);
  assert.equal(nearest("zzzz", ["dim", "hidden"]), undefined);
  assert.deepEqual(closeMatches("precision.storag", ["precision.storage", "precision.lossScale"]), [
    "precision.storage",
  ]);
});
