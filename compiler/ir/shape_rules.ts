import { type DType, isFloat } from "./dtype.ts";
import { convGeometry } from "./conv.ts";
import { ShapeMismatch } from "./errors.ts";
import type { Node } from "./node.ts";
import type { AttentionArg, Op, OpArgs } from "./ops.ts";

type Type = { shape: readonly number[]; dtype: DType };
type ShapeRule<O extends Op> = (src: readonly Node[], arg: OpArgs[O]) => Type;

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;
const describe = (n: Node) => `${n.dtype}${fmt(n.shape)}`;

function fail(msg: string): never {
  throw new ShapeMismatch(msg);
}

function checkShape(shape: readonly number[], what: string) {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) fail(`${what} has a bad dimension ${d} in ${fmt(shape)}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkAxes(axes: readonly number[], rank: number) {
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= rank) fail(`axis ${a} is out of range for rank ${rank}`);
  }
  if (new Set(axes).size !== axes.length) fail(`axes ${fmt(axes)} repeat an axis`);
}

const leaf = <O extends "input" | "param" | "const" | "iota">(): ShapeRule<O> => (_src, arg) => {
  checkShape(arg.shape, "the declared shape");
  return { shape: arg.shape, dtype: arg.dtype };
};

const random: ShapeRule<"rand_uniform" | "rand_normal"> = (src, arg) => {
  const seed = src[0]!;
  if (seed.dtype !== "u32" || !sameShape(seed.shape, [2])) {
    fail(`the seed must be u32[2] (seed, offset), got ${describe(seed)}`);
  }
  checkShape(arg.shape, "the declared shape");
  return { shape: arg.shape, dtype: "f32" };
};

const floatUnary: ShapeRule<Op> = (src) => {
  const x = src[0]!;
  if (!isFloat(x.dtype)) fail(`expects a float tensor, got ${describe(x)}; cast it first`);
  return { shape: x.shape, dtype: x.dtype };
};

const numericUnary: ShapeRule<Op> = (src) => {
  const x = src[0]!;
  if (x.dtype === "bool") fail(`expects a numeric tensor, got ${describe(x)}`);
  return { shape: x.shape, dtype: x.dtype };
};

function sameOperands(src: readonly Node[]) {
  const [a, b] = [src[0]!, src[1]!];
  if (a.dtype !== b.dtype) fail(`operand dtypes differ: ${describe(a)} and ${describe(b)}; cast one`);
  if (!sameShape(a.shape, b.shape)) {
    fail(`operand shapes differ: ${describe(a)} and ${describe(b)} (the IR needs equal shapes)`);
  }
  return a;
}

const arithmetic: ShapeRule<Op> = (src) => {
  const a = sameOperands(src);
  if (a.dtype === "bool") fail(`expects numeric operands, got ${describe(a)}`);
  return { shape: a.shape, dtype: a.dtype };
};

const floatBinary: ShapeRule<Op> = (src) => {
  const a = sameOperands(src);
  if (!isFloat(a.dtype)) fail(`expects float operands, got ${describe(a)}`);
  return { shape: a.shape, dtype: a.dtype };
};

const comparison: ShapeRule<Op> = (src) => {
  const a = sameOperands(src);
  return { shape: a.shape, dtype: "bool" };
};

const logical: ShapeRule<Op> = (src) => {
  for (const s of src) if (s.dtype !== "bool") fail(`expects bool operands, got ${describe(s)}`);
  if (src.length === 2) sameOperands(src);
  return { shape: src[0]!.shape, dtype: "bool" };
};

const reduce: ShapeRule<"sum" | "reduce_max"> = (src, arg) => {
  const x = src[0]!;
  checkAxes(arg.axes, x.shape.length);
  if (x.dtype === "bool") fail(`cannot reduce ${describe(x)}; cast it first`);
  return { shape: x.shape.map((d, i) => (arg.axes.includes(i) ? 1 : d)), dtype: x.dtype };
};

/** q, k, v of one attention op and its layout fields; returns [B, H, T, S, D]. */
function attentionOperands(src: readonly Node[], arg: AttentionArg, extra: number): number[] {
  const [q, k, v] = [src[0]!, src[1]!, src[2]!];
  if (src.length !== 3 + extra + arg.fields.length) {
    fail(
      `expects ${3 + extra} tensors and ${arg.fields.length} layout field(s) (${
        arg.fields.join(", ")
      }), got ${src.length}`,
    );
  }
  for (const [name, x] of [["q", q], ["k", k], ["v", v]] as const) {
    if (x.dtype !== "f32" || x.shape.length !== 4) {
      fail(`${name} must be f32 [B, H, T, D], got ${describe(x)}`);
    }
  }
  const [b, h, t, d] = q.shape as [number, number, number, number];
  const s = k.shape[2]!;
  if (!sameShape(k.shape, [b, h, s, d]) || !sameShape(v.shape, [b, h, s, d])) {
    fail(
      `k and v must be [${b}, ${h}, S, ${d}] like q ${describe(q)}, got ${describe(k)} and ${describe(v)}`,
    );
  }
  if (t > s) fail(`${t} queries but only ${s} keys: queries are the last T of the S positions`);
  if (!Number.isFinite(arg.scale)) fail(`the scale must be finite, got ${arg.scale}`);
  src.slice(3 + extra).forEach((f, i) => {
    if (f.dtype !== "i32" || !sameShape(f.shape, [b, s])) {
      fail(`layout field ${arg.fields[i]} must be i32 [${b}, ${s}], got ${describe(f)}`);
    }
  });
  return [b, h, t, s, d];
}

function attentionBackward(src: readonly Node[], arg: AttentionArg): number[] {
  const dims = attentionOperands([...src.slice(0, 3), ...src.slice(6)], arg, 0);
  const [b, h, t, , d] = dims as [number, number, number, number, number];
  const [lse, dO, delta] = [src[3]!, src[4]!, src[5]!];
  if (!sameShape(lse.shape, [b, h, t]) || !sameShape(delta.shape, [b, h, t])) {
    fail(`lse and delta must be f32 [${b}, ${h}, ${t}], got ${describe(lse)} and ${describe(delta)}`);
  }
  if (!sameShape(dO.shape, [b, h, t, d])) {
    fail(`dO must be f32 [${b}, ${h}, ${t}, ${d}], got ${describe(dO)}`);
  }
  return dims;
}

/** The exhaustive table: a new op is a type error here until it has a rule. */
export const SHAPE_RULES: { readonly [O in Op]: ShapeRule<O> } = {
  input: leaf(),
  param: leaf(),
  const: leaf(),
  iota: (src, arg) => {
    const t = leaf<"iota">()(src, arg);
    checkAxes([arg.axis], arg.shape.length);
    if (t.dtype === "bool") fail("iota cannot be bool");
    return t;
  },
  rand_uniform: random,
  rand_normal: random,
  neg: numericUnary,
  exp: floatUnary,
  log: floatUnary,
  sqrt: floatUnary,
  rsqrt: floatUnary,
  tanh: floatUnary,
  sigmoid: floatUnary,
  erf: floatUnary,
  sin: floatUnary,
  cos: floatUnary,
  abs: numericUnary,
  not: logical,
  cast: (src, arg) => ({ shape: src[0]!.shape, dtype: arg.dtype }),
  add: arithmetic,
  sub: arithmetic,
  mul: arithmetic,
  div: arithmetic,
  pow: floatBinary,
  max: arithmetic,
  min: arithmetic,
  lt: comparison,
  le: comparison,
  eq: comparison,
  ne: comparison,
  and: logical,
  or: logical,
  where: (src) => {
    const [c, a, b] = [src[0]!, src[1]!, src[2]!];
    if (c.dtype !== "bool") fail(`the condition must be bool, got ${describe(c)}`);
    sameOperands([a, b]);
    if (!sameShape(c.shape, a.shape)) fail(`condition ${describe(c)} and values ${describe(a)} differ`);
    return { shape: a.shape, dtype: a.dtype };
  },
  sum: reduce,
  reduce_max: reduce,
  matmul: (src) => {
    const [a, b] = [src[0]!, src[1]!];
    if (a.dtype !== b.dtype) fail(`operand dtypes differ: ${describe(a)} and ${describe(b)}`);
    if (!isFloat(a.dtype)) fail(`expects float operands, got ${describe(a)} x ${describe(b)}`);
    if (a.shape.length < 2 || b.shape.length !== a.shape.length) {
      fail(
        `expects [...batch, m, k] x [...batch, k, n] of equal rank >= 2, got ${describe(a)} x ${describe(b)}`,
      );
    }
    const r = a.shape.length;
    if (!sameShape(a.shape.slice(0, r - 2), b.shape.slice(0, r - 2))) {
      fail(`batch dims differ: ${describe(a)} x ${describe(b)}`);
    }
    if (a.shape[r - 1] !== b.shape[r - 2]) {
      fail(`inner dims differ: ${describe(a)} x ${describe(b)} (k = ${a.shape[r - 1]} vs ${b.shape[r - 2]})`);
    }
    return { shape: [...a.shape.slice(0, r - 1), b.shape[r - 1]!], dtype: a.dtype };
  },
  conv2d: (src, arg) => {
    const [x, w] = [src[0]!, src[1]!];
    if (x.dtype !== "f32" || w.dtype !== "f32") {
      fail(`expects f32 operands, got ${describe(x)} and ${describe(w)}`);
    }
    const g = convGeometry(x.shape, w.shape, arg);
    if (typeof g === "string") fail(g);
    return { shape: [g.n, g.ho, g.wo, g.cout], dtype: "f32" };
  },
  reshape: (src, arg) => {
    const x = src[0]!;
    checkShape(arg.shape, "the new shape");
    const n = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
    if (n(x.shape) !== n(arg.shape)) {
      fail(`cannot reshape ${describe(x)} (${n(x.shape)} elements) to ${fmt(arg.shape)} (${n(arg.shape)})`);
    }
    return { shape: arg.shape, dtype: x.dtype };
  },
  permute: (src, arg) => {
    const x = src[0]!;
    const r = x.shape.length;
    if (arg.perm.length !== r || [...arg.perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
      fail(`${fmt(arg.perm)} is not a permutation of ${r} axes (input ${describe(x)})`);
    }
    return { shape: arg.perm.map((p) => x.shape[p]!), dtype: x.dtype };
  },
  expand: (src, arg) => {
    const x = src[0]!;
    if (arg.shape.length !== x.shape.length) {
      fail(`expand keeps the rank: ${describe(x)} to ${fmt(arg.shape)}; reshape first`);
    }
    x.shape.forEach((d, i) => {
      if (d !== 1 && d !== arg.shape[i]) fail(`cannot broadcast ${describe(x)} to ${fmt(arg.shape)}`);
    });
    return { shape: arg.shape, dtype: x.dtype };
  },
  slice: (src, arg) => {
    const x = src[0]!;
    const r = x.shape.length;
    if (arg.starts.length !== r || arg.ends.length !== r) fail(`slice needs ${r} starts and ends`);
    const shape = x.shape.map((d, i) => {
      const [s, e] = [arg.starts[i]!, arg.ends[i]!];
      if (!(0 <= s && s <= e && e <= d)) fail(`axis ${i}: [${s}, ${e}) is outside ${describe(x)}`);
      return e - s;
    });
    return { shape, dtype: x.dtype };
  },
  pad: (src, arg) => {
    const x = src[0]!;
    const r = x.shape.length;
    if (arg.before.length !== r || arg.after.length !== r) fail(`pad needs ${r} before and after sizes`);
    if ([...arg.before, ...arg.after].some((p) => !Number.isInteger(p) || p < 0)) {
      fail(`pad sizes must be non-negative integers, got ${fmt(arg.before)} / ${fmt(arg.after)}`);
    }
    return { shape: x.shape.map((d, i) => d + arg.before[i]! + arg.after[i]!), dtype: x.dtype };
  },
  concat: (src, arg) => {
    if (src.length === 0) fail("concat needs at least one tensor");
    const first = src[0]!;
    checkAxes([arg.axis], first.shape.length);
    let total = 0;
    for (const s of src) {
      const ok = s.dtype === first.dtype && s.shape.length === first.shape.length &&
        s.shape.every((d, i) => i === arg.axis || d === first.shape[i]);
      if (!ok) fail(`cannot join ${src.map(describe).join(", ")} along axis ${arg.axis}`);
      total += s.shape[arg.axis]!;
    }
    return { shape: first.shape.map((d, i) => (i === arg.axis ? total : d)), dtype: first.dtype };
  },
  gather: (src) => {
    const [table, idx] = [src[0]!, src[1]!];
    if (idx.dtype !== "i32" && idx.dtype !== "u32") {
      fail(`the index must be i32 or u32, got ${describe(idx)}`);
    }
    if (table.shape.length < 1) fail(`the table must have rank >= 1, got ${describe(table)}`);
    return { shape: [...idx.shape, ...table.shape.slice(1)], dtype: table.dtype };
  },
  scatter_add: (src, arg) => {
    const [idx, upd] = [src[0]!, src[1]!];
    if (idx.dtype !== "i32" && idx.dtype !== "u32") {
      fail(`the index must be i32 or u32, got ${describe(idx)}`);
    }
    if (!sameShape(upd.shape.slice(0, idx.shape.length), idx.shape)) {
      fail(`updates ${describe(upd)} must start with the index shape ${describe(idx)}`);
    }
    return { shape: [arg.rows, ...upd.shape.slice(idx.shape.length)], dtype: upd.dtype };
  },
  attention: (src, arg) => {
    const [b, h, t, , d] = attentionOperands(src, arg, 0) as [number, number, number, number, number];
    return { shape: [b, h, t, d + 1], dtype: "f32" };
  },
  attention_grad_q: (src, arg) => {
    const [b, h, t, , d] = attentionBackward(src, arg) as [number, number, number, number, number];
    return { shape: [b, h, t, d], dtype: "f32" };
  },
  attention_grad_kv: (src, arg) => {
    const [b, h, , s, d] = attentionBackward(src, arg) as [number, number, number, number, number];
    return { shape: [b, h, s, 2 * d], dtype: "f32" };
  },
};

export function inferType<O extends Op>(op: O, src: readonly Node[], arg: OpArgs[O]): Type {
  return (SHAPE_RULES[op] as ShapeRule<O>)(src, arg);
}
