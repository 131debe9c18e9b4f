/** Data sources and batch assembly for training. */
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
