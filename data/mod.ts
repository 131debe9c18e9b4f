/**
 * Data sources and batch assembly for training, and the MNIST evaluation (a digit classifier reads
 * generated digits): it belongs with the MNIST data, the runtime knows nothing of digits.
 */
export { type DigitSet, loadMnist, MNIST_PIXELS, MNIST_SIDE, shiftedDigit } from "./mnist.ts";
export {
  CAPTION_TEMPLATES,
  digitCaption,
  digitImage,
  mnistCaptions,
  type MnistCaptionsConfig,
  type MnistCaptionsOptions,
  type MnistCaptionsSource,
  T1_CAPTION_TEMPLATE,
  testDigits,
} from "./mnist_captions.ts";
export { type ClassifierOptions, type DigitClassifier, digitClassifier } from "./digit_classifier.ts";
export {
  balancedIndices,
  type DigitEval,
  type DigitEvalOptions,
  type DigitEvalOutput,
  evaluateDigits,
  formatDigitEval,
  mentionedDigit,
  msPerStep,
  percent,
  percentRange,
  wilsonInterval,
} from "./digit_eval.ts";
