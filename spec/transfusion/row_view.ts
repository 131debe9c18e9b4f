/**
 * What a row template means to the model, position by position: the layout fields the data
 * pipeline feeds, the attention mask they give under the Transfusion rule (dense, [T, T]), and the
 * loss weights: which positions the LM loss trains (the spec's `lmTargets` rule, evaluated on the
 * host as the graph evaluates it) and which images have diffusion loss and a noise-limited timestep.
 * For inspecting a template and for tests; the entries derive the same from the layout in-graph.
 */
import { denseMask } from "../../compiler/ir/mask.ts";
import { densePositions } from "../../compiler/ir/position.ts";
import type { LayoutFields } from "../../compiler/ir/mask.ts";
import { transfusionMask } from "./backbone.ts";
import { lmTargets } from "./lm.ts";
import { layOutRows, type PlacedSpan, type RowTemplate, type RowTexts } from "./rows.ts";
import { type SequenceConfig, sequenceGeometry } from "./sequence.ts";

export interface RowImageView {
  readonly name: string;
  readonly slot: number;
  /** BOI's position; patches follow, EOI at end - 1. */
  readonly start: number;
  readonly end: number;
  /** The image's MSE counts in the diffusion loss (every image of a row does). */
  readonly diffusion: boolean;
  /** Its training timestep stays below diffusion.noiseLimit. */
  readonly noiseLimited: boolean;
}

export interface RowView {
  /** Positions the template takes (the row is padded to `seq` after them). */
  readonly length: number;
  readonly seq: number;
  /** [seq] */
  readonly tokens: Int32Array;
  /** [seq] each. */
  readonly fields: LayoutFields;
  /** [seq, seq], 1 where query i may attend key j (transfusionMask over the fields). */
  readonly mask: Uint8Array;
  /** [seq], 1 where position i is trained to predict token i + 1. */
  readonly lmTargets: Uint8Array;
  readonly images: readonly RowImageView[];
  readonly spans: readonly PlacedSpan[];
}

/**
 * One row of `template` laid out with `config`'s sizes; text slots hold `texts` (default: empty
 * text, i.e. EOS then padding; null leaves a slot out).
 */
export function rowView(
  template: RowTemplate,
  config: SequenceConfig & { readonly loss: { readonly boiTarget: boolean } },
  texts?: RowTexts,
): RowView {
  const g = sequenceGeometry({ ...config, row: template });
  const filled: RowTexts = texts ??
    Object.fromEntries(template.spans.filter((s) => s.kind === "text").map((s) => [s.name, ""]));
  const laid = layOutRows([{ template, texts: filled }], g);
  const spans = laid.spans[0]!;
  const T = g.seq;
  const images = spans.filter((s) => s.span.kind === "image").map((s): RowImageView => ({
    name: s.span.name,
    slot: s.slot,
    start: s.start,
    end: s.end,
    diffusion: laid.imageValid[s.slot] === 1,
    noiseLimited: laid.imageFirst[s.slot] === 1,
  }));
  return {
    length: laid.fields.doc.findLastIndex((d) => d >= 0) + 1,
    seq: T,
    tokens: laid.tokens,
    fields: laid.fields,
    mask: denseMask(transfusionMask().expr, laid.fields, 1, T),
    lmTargets: densePositions(lmTargets(config.loss.boiTarget).expr, laid.fields, laid.tokens, 1, T),
    images,
    spans,
  };
}
