import { type DType, fmtShape, type Node, normalize, type Op, size, SpecError, toposort } from "./ir/mod.ts";
import { normalFromWords, randomWords, uniformFromWord } from "./philox.ts";
import { attentionGradRule, attentionRule } from "./attention_interpreter.ts";
import { conv2dRule } from "./conv_interpreter.ts";

/**
 * The reference interpreter: plain TypeScript, f64 arithmetic, one rule per op. It is the oracle
 * that every WGSL kernel and every gradient is checked against, so it favours clarity over speed.
 */
export interface Value {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: Float64Array;
}

export interface Env {
  inputs?: Record<string, ArrayLike<number>>;
  params?: Record<string, ArrayLike<number>>;
}

type Rule<O extends Op> = (n: Node<O>, src: readonly Value[], env: Env) => Float64Array;

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Calls `f(flat, index)` for every element of `shape` in row-major order. */
function forEachIndex(shape: readonly number[], f: (flat: number, idx: number[]) => void) {
  const n = size(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(flat, idx);
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
}

function dot(idx: readonly number[], st: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < idx.length; i++) o += idx[i]! * st[i]!;
  return o;
}

const map1 = (f: (x: number) => number): Rule<Op> => (_n, [x]) => x!.data.map(f);
const map2 = (f: (a: number, b: number) => number): Rule<Op> => (_n, [a, b]) =>
  a!.data.map((x, i) => f(x, b!.data[i]!));

function leafData(n: Node, table: Record<string, ArrayLike<number>> | undefined, name: string, kind: string) {
  const data = table?.[name];
  if (!data) throw new SpecError(n.op, `no value given for ${kind} "${name}"`, n.site);
  if (data.length !== size(n.shape)) {
    throw new SpecError(
      n.op,
      `${kind} "${name}" has ${data.length} elements, expected ${fmtShape(n.shape)} = ${size(n.shape)}`,
      n.site,
    );
  }
  return Float64Array.from(data);
}

/** Abramowitz-Stegun 7.1.26 is too coarse for an oracle; this series/continued fraction is ~1e-15. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 100; n++) {
      term *= -(ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc by Lentz's continued fraction for large |x|
  let f = ax;
  let c = ax;
  let d = 0;
  for (let k = 1; k < 200; k++) {
    const a = k / 2;
    d = ax + a * d;
    d = 1 / d;
    c = ax + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

function reduce(init: number, f: (acc: number, x: number) => number): Rule<"sum" | "reduce_max"> {
  return (n, [x]) => {
    const out = new Float64Array(size(n.shape)).fill(init);
    const ost = strides(n.shape);
    const keep = x!.shape.map((_, i) => !n.arg.axes.includes(i));
    forEachIndex(x!.shape, (flat, idx) => {
      let o = 0;
      for (let a = 0; a < idx.length; a++) if (keep[a]) o += idx[a]! * ost[a]!;
      out[o] = f(out[o]!, x!.data[flat]!);
    });
    return out;
  };
}

const random = (normal: boolean): Rule<"rand_uniform" | "rand_normal"> => (n, [seed]) => {
  const [key, offset] = [seed!.data[0]!, seed!.data[1]!];
  const out = new Float64Array(size(n.shape));
  for (let i = 0; i < out.length; i++) {
    const w = randomWords(key, offset, n.arg.stream, i);
    out[i] = normal ? normalFromWords(w[0], w[1]) : uniformFromWord(w[0]);
  }
  return out;
};

/** The exhaustive table: a new op is a type error until it has a rule here. */
export const INTERPRETER: { readonly [O in Op]: Rule<O> } = {
  input: (n, _s, env) => leafData(n, env.inputs, n.arg.name, "input"),
  param: (n, _s, env) => leafData(n, env.params, n.arg.path, "parameter"),
  const: (n) => new Float64Array(size(n.shape)).fill(n.arg.value),
  iota: (n) => {
    const out = new Float64Array(size(n.shape));
    forEachIndex(n.shape, (flat, idx) => (out[flat] = idx[n.arg.axis]!));
    return out;
  },
  rand_uniform: random(false),
  rand_normal: random(true),
  neg: map1((x) => -x),
  exp: map1(Math.exp),
  log: map1(Math.log),
  sqrt: map1(Math.sqrt),
  rsqrt: map1((x) => 1 / Math.sqrt(x)),
  tanh: map1(Math.tanh),
  sigmoid: map1((x) => 1 / (1 + Math.exp(-x))),
  erf: map1(erf),
  sin: map1(Math.sin),
  cos: map1(Math.cos),
  abs: map1(Math.abs),
  not: map1((x) => (x ? 0 : 1)),
  // Float to integer conversion saturates, as WGSL's i32(f) / u32(f) do (then truncates).
  cast: (n, [x]) =>
    (x!.dtype === "f32" || x!.dtype === "f16") && (n.dtype === "i32" || n.dtype === "u32")
      ? x!.data.map((v) =>
        Number.isNaN(v)
          ? 0
          : n.dtype === "i32"
          ? Math.min(Math.max(v, -2147483648), 2147483647)
          : Math.min(Math.max(v, 0), 4294967295)
      )
      : x!.data.slice(),
  add: map2((a, b) => a + b),
  sub: map2((a, b) => a - b),
  mul: (n, [a, b]) =>
    n.dtype === "i32" || n.dtype === "u32"
      ? a!.data.map((x, i) => Math.imul(x, b!.data[i]!))
      : a!.data.map((x, i) => x * b!.data[i]!),
  div: (n, [a, b]) =>
    n.dtype === "i32" || n.dtype === "u32"
      // WGSL defines integer division by zero as the dividend; the oracle follows the target.
      ? a!.data.map((x, i) => (b!.data[i] === 0 ? x : Math.trunc(x / b!.data[i]!)))
      : a!.data.map((x, i) => x / b!.data[i]!),
  pow: map2(Math.pow),
  max: map2(Math.max),
  min: map2(Math.min),
  lt: map2((a, b) => +(a < b)),
  le: map2((a, b) => +(a <= b)),
  eq: map2((a, b) => +(a === b)),
  ne: map2((a, b) => +(a !== b)),
  and: map2((a, b) => +(a !== 0 && b !== 0)),
  or: map2((a, b) => +(a !== 0 || b !== 0)),
  where: (_n, [c, a, b]) => c!.data.map((x, i) => (x ? a!.data[i]! : b!.data[i]!)),
  sum: reduce(0, (acc, x) => acc + x),
  reduce_max: reduce(-Infinity, Math.max),
  matmul: (n, [a, b]) => {
    const r = n.shape.length;
    const [m, k, nn] = [a!.shape[r - 2]!, a!.shape[r - 1]!, b!.shape[r - 1]!];
    const batch = size(n.shape.slice(0, r - 2));
    const out = new Float64Array(batch * m * nn);
    for (let z = 0; z < batch; z++) {
      const [ao, bo, oo] = [z * m * k, z * k * nn, z * m * nn];
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < nn; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++) acc += a!.data[ao + i * k + p]! * b!.data[bo + p * nn + j]!;
          out[oo + i * nn + j] = acc;
        }
      }
    }
    return out;
  },
  conv2d: (n, [x, w]) => conv2dRule(n, x!.data, w!.data),
  reshape: (_n, [x]) => x!.data.slice(),
  permute: (n, [x]) => {
    const xs = strides(x!.shape);
    const st = n.arg.perm.map((p) => xs[p]!);
    const out = new Float64Array(size(n.shape));
    forEachIndex(n.shape, (flat, idx) => (out[flat] = x!.data[dot(idx, st)]!));
    return out;
  },
  expand: (n, [x]) => {
    const st = strides(x!.shape).map((s, i) => (x!.shape[i] === 1 ? 0 : s));
    const out = new Float64Array(size(n.shape));
    forEachIndex(n.shape, (flat, idx) => (out[flat] = x!.data[dot(idx, st)]!));
    return out;
  },
  slice: (n, [x]) => {
    const st = strides(x!.shape);
    const base = dot(n.arg.starts, st);
    const out = new Float64Array(size(n.shape));
    forEachIndex(n.shape, (flat, idx) => (out[flat] = x!.data[base + dot(idx, st)]!));
    return out;
  },
  pad: (n, [x]) => {
    const out = new Float64Array(size(n.shape)).fill(n.arg.value);
    forEachIndex(x!.shape, (flat, idx) => {
      const o = idx.reduce((acc, v, a) => acc * n.shape[a]! + v + n.arg.before[a]!, 0);
      out[o] = x!.data[flat]!;
    });
    return out;
  },
  concat: (n, src) => {
    const out = new Float64Array(size(n.shape));
    const ost = strides(n.shape);
    let offset = 0;
    for (const s of src) {
      forEachIndex(s.shape, (flat, idx) => {
        out[dot(idx, ost) + offset * ost[n.arg.axis]!] = s.data[flat]!;
      });
      offset += s.shape[n.arg.axis]!;
    }
    return out;
  },
  gather: (n, [table, idx]) => {
    const rows = table!.shape[0]!;
    const row = size(table!.shape.slice(1));
    const out = new Float64Array(size(n.shape));
    idx!.data.forEach((r, i) => {
      if (r < 0 || r >= rows) return; // out-of-range rows read as zeros (padding)
      out.set(table!.data.subarray(r * row, (r + 1) * row), i * row);
    });
    return out;
  },
  scatter_add: (n, [idx, upd]) => {
    const row = size(n.shape.slice(1));
    const out = new Float64Array(size(n.shape));
    idx!.data.forEach((r, i) => {
      if (r < 0 || r >= n.arg.rows) return; // matches gather: out-of-range rows are dropped
      for (let j = 0; j < row; j++) out[r * row + j]! += upd!.data[i * row + j]!;
    });
    return out;
  },
  attention: (n, src) => attentionRule(n, src),
  attention_grad_q: (n, src) => attentionGradRule(n, src, "q"),
  attention_grad_kv: (n, src) => attentionGradRule(n, src, "kv"),
};

/** Evaluates `outputs` (and everything they need) with the reference interpreter. */
export function interpret(outputs: readonly Node[], env: Env = {}): Value[] {
  const values = new Map<number, Value>();
  for (const n of toposort(outputs)) {
    const src = n.src.map((s) => values.get(s.id)!);
    const raw = (INTERPRETER[n.op] as Rule<Op>)(n, src, env);
    const data = n.dtype === "f32" || n.dtype === "f16" ? raw : raw.map((x) => normalize(n.dtype, x));
    values.set(n.id, { shape: n.shape, dtype: n.dtype, data });
  }
  return outputs.map((o) => values.get(o.id)!);
}
