/** Data sources and batch assembly for training. */
export { type DigitSet, loadMnist, MNIST_PIXELS, MNIST_SIDE } from "./mnist.ts";
