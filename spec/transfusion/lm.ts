/**
 * The text side of the loss: next-token cross-entropy at the positions the contract's rule picks.
 */
import { SPECIAL } from "../../runtime/tokenizer.ts";
import type { Layout } from "../layout.ts";
import { crossEntropy } from "../nn/losses.ts";
import { isText, isToken, isValid, type Position, positionMask } from "../position.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Position i is trained to predict token i + 1 where the next position is text, its own token is not
 * BOI (the next positions are patches), and it is not padding. Without `boiTarget` the position
 * before BOI is left out too, so BOI is never a target (the T1 benchmark: "caption tokens and EOI").
 */
export function lmTargets(boiTarget: boolean): Position {
  const rule = isText().next().and(isToken(SPECIAL.boi).not()).and(isValid());
  return boiTarget ? rule : rule.and(isToken(SPECIAL.boi).next().not());
}

/** Mean cross-entropy over the counted positions. logits [B, T, V], tokens i32 [B, T]. */
export function lmLoss(
  logits: Tensor<"f32", 3>,
  tokens: Tensor<"i32", 2>,
  layout: Layout,
  boiTarget: boolean,
): Tensor<"f32", 0> {
  const counted = positionMask(lmTargets(boiTarget), layout, tokens); // [B, T]
  const next = tokens.slice(1, 1).pad(1, 0, 1, 0); // [B, T]: the token at i + 1 (0 past the end)
  return crossEntropy(logits, next, { ignore: counted.not() });
}
