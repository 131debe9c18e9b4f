/**
 * A language model on your own text, several documents packed per row:
 *
 *   deno task train examples/own_text_lm.ts --data text:./my_corpus/ --steps 2000
 *
 * `text:` takes a .txt or .md file (paragraphs are the documents), a folder of them (one document
 * per file) or a JSONL file of {"text": ...} lines. Each document is BOS, its bytes, EOS; documents
 * are packed into rows of `seq` and the layout marks where each one starts, so attention never
 * crosses a document (sameDocument) and positions restart at every BOS (data/own_text.ts). Without
 * --data it trains on this project's ARCHITECTURE.md. A trained BPE (`deno task tokenizer`) plugs in
 * as `textFiles(path, { tokenizer })` with `vocab` set to its size.
 */
import {
  embedding,
  input,
  isToken,
  isValid,
  type Layout,
  layoutInputs,
  layoutOf,
  linearNoBias,
  type Materialized,
  model,
  positionMask,
  rope1d,
  type Tensor,
} from "../spec/mod.ts";
import { crossEntropy } from "../spec/nn/mod.ts";
import { backbone, type BackboneConfig, transfusionMask } from "../spec/transfusion/mod.ts";
import { SPECIAL } from "../runtime/tokenizer.ts";
import { textFiles } from "../data/own_text.ts";

const config = {
  vocab: 261, // bytes, BOS, EOS, BOI, EOI, PAD (runtime/tokenizer.ts)
  backbone: {
    dim: 128,
    depth: 4,
    heads: 4,
    mlp: "swiglu",
    hidden: 384,
    norm: "rmsnorm",
    normEps: 1e-5,
    initStd: 0.02,
    ropeBase: 10000,
  } satisfies BackboneConfig as BackboneConfig,
};
type Config = typeof config;

const params = (c: Config) => ({
  embed: embedding(c.vocab, c.backbone.dim, { std: c.backbone.initStd }),
  backbone: backbone(c.backbone),
  head: linearNoBias(c.backbone.dim, c.vocab, { std: c.backbone.initStd }),
});
type Params = Materialized<ReturnType<typeof params>>;

/** tokens [B, T] -> logits [B, T, vocab]: causal within each document, RoPE on the document's pos. */
function logits(p: Params, c: Config, tokens: Tensor<"i32", 2>, layout: Layout): Tensor<"f32", 3> {
  const rope = (qk: Tensor<"f32", 4>) => rope1d(qk, layout.pos, c.backbone.ropeBase);
  return p.head(p.backbone(p.embed(tokens), { mask: transfusionMask(), layout, rope }));
}

/** Position i predicts token i + 1 inside its document: not at padding, not from a document's EOS. */
const targets = isValid().and(isValid().next()).and(isToken(SPECIAL.eos).not());

const textInputs = () => ({ tokens: input("i32", ["batch", "seq"]), ...layoutInputs() });

export default model({
  name: "own_text_lm",
  config,
  dims: { batch: 16, seq: 128 },
  params,
  inputs: textInputs,
  loss: (p, x, c) => {
    const layout = layoutOf(x);
    const next = x.tokens.slice(1, 1).pad(1, 0, 1, 0); // [B, T]: the token at i + 1
    const counted = positionMask(targets, layout, x.tokens);
    return crossEntropy(logits(p, c, x.tokens, layout), next, { ignore: counted.not() });
  },
  entries: {
    logits: {
      inputs: textInputs,
      outputs: (p, x, c) => ({ logits: logits(p, c, x.tokens as Tensor<"i32", 2>, layoutOf(x as never)) }),
    },
  },
  training: { steps: 1000, batch: 16, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
  data: textFiles(new URL("../ARCHITECTURE.md", import.meta.url)),
});
