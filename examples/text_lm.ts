/**
 * A text-only language model over the demo's rows (examples/transfusion_demo.ts): the same backbone, token embedding, head
 * and LM target rule as Transfusion, but no image parameters and no diffusion. The images' positions
 * stay in the sequence as blank vectors, so its LM loss on the same rows is the baseline that shows
 * what seeing the image is worth for captioning (image-first rows): it can only learn the caption
 * prior ("a handwritten digit", then a guess among ten digits).
 */
import {
  type Batch,
  type DataSource,
  embedding,
  input,
  type Layout,
  layoutInputs,
  layoutOf,
  linearNoBias,
  type Materialized,
  MODALITY,
  model,
  type Tensor,
} from "../spec/mod.ts";
import {
  attendOptions,
  backbone,
  lmLoss,
  type TransfusionConfig,
  transfusionConfig,
  type TransfusionOptions,
} from "../spec/transfusion/mod.ts";
import { mnistCaptions, T1_CAPTION_TEMPLATE } from "../data/mnist_captions.ts";

const params = (c: TransfusionConfig) => ({
  embed: embedding(c.text.vocab, c.backbone.dim, { std: c.backbone.initStd }),
  backbone: backbone(c.backbone),
  head: linearNoBias(c.backbone.dim, c.text.vocab, { std: c.backbone.initStd }),
});
type Params = Materialized<ReturnType<typeof params>>;

/** tokens [B, T] -> logits [B, T, vocab]; image positions enter as zero vectors. */
function logits(p: Params, c: TransfusionConfig, tokens: Tensor<"i32", 2>, layout: Layout): Tensor<"f32", 3> {
  const text = layout.modality.ne(MODALITY.image).cast("f32").unsqueeze(-1); // [B, T, 1]
  const x = p.embed(tokens).mul(text) as Tensor<"f32", 3>;
  return p.head(p.backbone(x, attendOptions(layout, c.backbone, c.image)));
}

const textInputs = () => ({ tokens: input("i32", ["batch", "seq"]), ...layoutInputs() });

/** The rows of `source` with only the inputs a text model takes (tokens and the layout). */
function textOnly(source: DataSource): DataSource {
  const pick = (b: Batch): Batch =>
    Object.fromEntries(Object.entries(b).filter(([k]) => k === "tokens" || k.startsWith("layout_")));
  const evalBatch = source.evalBatch?.bind(source);
  return {
    tokensPerBatch: source.tokensPerBatch,
    ...(source.evalBatches === undefined ? {} : { evalBatches: source.evalBatches }),
    batch: (step, seed) => pick(source.batch(step, seed)),
    ...(evalBatch ? { evalBatch: (i: number) => pick(evalBatch(i)) } : {}),
    describe: () => `${source.describe()} (text only)`,
  };
}

/** The text LM over `text` (the byte tokenizer by default; examples/text_lm_bpe.ts gives a BPE). */
export function textLm(
  opts: { name: string; text: NonNullable<TransfusionOptions["text"]>; templates: readonly string[] },
) {
  const { config, schema } = transfusionConfig({
    backbone: { dim: 64, depth: 3, heads: 4, hidden: 192 },
    text: opts.text,
    image: { size: 8, channels: 1, patch: 2, imagesPerRow: 1 }, // only the row layout: BOI, 16 blanks, EOI
    diffusion: { condDropout: 0 }, // a dropped caption leaves no text to learn from
  });
  return model({
    name: opts.name,
    config: schema,
    dims: { batch: 32, seq: config.seq },
    params,
    inputs: textInputs,
    loss: (p, x, c) => {
      const layout = layoutOf(x);
      return lmLoss(logits(p, c, x.tokens, layout), x.tokens, layout, c.loss.boiTarget);
    },
    entries: {
      logits: {
        inputs: textInputs,
        outputs: (p, x, c) => {
          const tokens = x.tokens as Tensor<"i32", 2>;
          return { logits: logits(p, c, tokens, layoutOf(x as never)) };
        },
      },
    },
    training: { steps: 1000, batch: 32, lr: 1e-3, warmup: 50, lrFloor: 1e-4, weightDecay: 0.01, clip: 1 },
    data: (c, dims) => textOnly(mnistCaptions(c, dims, { templates: opts.templates })),
  });
}

export default textLm({
  name: "text_lm",
  text: { vocab: 261, captionLength: 22 },
  templates: [T1_CAPTION_TEMPLATE],
});
