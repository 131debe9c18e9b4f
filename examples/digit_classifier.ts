/**
 * The digit classifier that scores generated digits (`deno task eval`): an MLP 784 -> 512 -> 256 ->
 * 10 with GELUs, trained with cross-entropy on MNIST by this compiler. Training digits are shifted by
 * up to `shift` pixels, and most are coarsened the way a small model frame stores them (f x f blocks
 * averaged and repeated, f = 2..4, as data/mnist_captions.ts `digitImage` does for 14x14 down to 7x7
 * frames), so the classifier reads digits generated at any of those resolutions by their shape.
 */
import {
  crossEntropy,
  type DataSource,
  gelu,
  input,
  linear,
  type Materialized,
  model,
  oneHot,
  type Tensor,
} from "../spec/mod.ts";
import { type DigitSet, loadMnist, MNIST_PIXELS, MNIST_SIDE, shiftedDigit } from "../data/mnist.ts";

const config = { dim: MNIST_PIXELS, hidden1: 512, hidden2: 256, classes: 10, shift: 2 };
type Config = typeof config;

const params = (c: Config) => ({
  fc1: linear(c.dim, c.hidden1),
  fc2: linear(c.hidden1, c.hidden2),
  fc3: linear(c.hidden2, c.classes),
});
type Params = Materialized<ReturnType<typeof params>>;

/** x: [B, 784] in [0, 1] -> logits [B, 10]. */
function forward(p: Params, x: Tensor<"f32", 2>): Tensor<"f32", 2> {
  return p.fc3(gelu(p.fc2(gelu(p.fc1(x)))));
}

/** The fraction of rows whose label has the largest logit (a tie counts as correct). */
function accuracy(logits: Tensor<"f32", 2>, labels: Tensor<"i32", 1>): Tensor<"f32", 0> {
  const labelLogit = logits.mul(oneHot(labels, logits.dim(-1))).sum(-1); // [B]
  return labelLogit.ge(logits.max(-1)).cast("f32").mean();
}

/** Train batches: digits in a seeded order, each shifted by a seeded offset; eval: the test split as is. */
function mnistDigits(c: Config, dims: Readonly<Record<string, number>>): DataSource {
  const batch = dims.batch ?? 64;
  const { train, test } = loadMnist();
  const pack = (set: DigitSet, indices: readonly number[], shifts?: readonly [number, number][]) => {
    const x = new Float32Array(indices.length * MNIST_PIXELS);
    indices.forEach((k, i) => {
      const [dx, dy] = shifts?.[i] ?? [0, 0];
      x.set(shiftedDigit(set, k, dx, dy), i * MNIST_PIXELS);
    });
    return { x, y: Int32Array.from(indices, (k) => set.labels[k]!) };
  };
  return {
    tokensPerBatch: batch,
    evalBatches: Math.floor(test.count / batch),
    batch(step, seed) {
      const random = mulberry(seed * 1_000_003 + step);
      const indices = Array.from({ length: batch }, () => Math.floor(random() * train.count));
      const offset = () => Math.floor(random() * (2 * c.shift + 1)) - c.shift;
      const rows = pack(train, indices, indices.map(() => [offset(), offset()]));
      indices.forEach((_, i) => {
        const f = BLOCKS[Math.floor(random() * BLOCKS.length)]!;
        if (f > 1) coarsen(rows.x.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS), f);
      });
      return rows;
    },
    evalBatch: (index) => pack(test, Array.from({ length: batch }, (_, i) => index * batch + i)),
    describe: () => `MNIST digits: ${train.count} train (shifted up to ${c.shift}px) / ${test.count} test`,
  };
}

/** Block factors a training digit is coarsened by: full resolution a quarter of the time. */
const BLOCKS = [1, 2, 3, 4];

/**
 * In place: the centered side*f square (side = floor(28 / f)) averaged in f x f blocks, each block
 * repeated back; the margin outside it black. What a size-28/f model frame keeps of a digit.
 */
function coarsen(img: Float32Array, f: number): void {
  const side = Math.floor(MNIST_SIDE / f);
  const crop = Math.floor((MNIST_SIDE - side * f) / 2);
  const out = new Float32Array(MNIST_PIXELS);
  for (let by = 0; by < side; by++) {
    for (let bx = 0; bx < side; bx++) {
      let sum = 0;
      for (let dy = 0; dy < f; dy++) {
        for (let dx = 0; dx < f; dx++) sum += img[(crop + by * f + dy) * MNIST_SIDE + crop + bx * f + dx]!;
      }
      for (let dy = 0; dy < f; dy++) {
        for (let dx = 0; dx < f; dx++) {
          out[(crop + by * f + dy) * MNIST_SIDE + crop + bx * f + dx] = sum / (f * f);
        }
      }
    }
  }
  img.set(out);
}

/** A small seeded generator (mulberry32). */
function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export default model({
  name: "digit_classifier",
  config,
  dims: { batch: 64 },
  params,
  inputs: (c) => ({
    x: input("f32", ["batch", c.dim]), // flattened 28x28 digits in [0, 1]
    y: input("i32", ["batch"]), // labels 0..9
  }),
  loss: (p, { x, y }) => {
    const logits = forward(p, x);
    return { loss: crossEntropy(logits, y), metrics: { accuracy: accuracy(logits, y) } };
  },
  entries: {
    logits: {
      inputs: (c) => ({ x: input("f32", ["batch", c.dim]) }),
      outputs: (p, { x }) => ({ logits: forward(p, x as Tensor<"f32", 2>) }),
    },
  },
  data: mnistDigits,
  training: { steps: 2000, batch: 64, lr: 2e-3, warmup: 100, weightDecay: 0.01 },
});
