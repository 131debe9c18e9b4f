import { type Node, type Op, size } from "../ir/mod.ts";
import { literal, scalarType, sumIndex } from "../../kernels/wgsl.ts";
import { Ix } from "./index.ts";

export type KernelKind =
  | "elementwise"
  /** A row reduction and its broadcast reader in one kernel (chosen by fusion, no op's own kind). */
  | "row"
  | "reduce"
  | "matmul"
  /** A convolution as an implicit GEMM: the matmul tiles reading the input window in place. */
  | "conv"
  | "scatter"
  | "attention"
  | "attention_grad_q"
  | "attention_grad_kv";

/** What the value rules ask of the code generator. */
export interface ValueContext {
  /** WGSL value of `n` at `ix`: a load when `n` is stored, its value rule otherwise. */
  at(n: Node, ix: Ix): string;
  /**
   * The value of the first case whose `when` holds (the last case's `when` is ignored: it is the
   * default), evaluating only that case, so a concat computes one piece per element, not all.
   */
  choose(type: string, cases: readonly { when: string; value: () => string }[]): string;
  /**
   * Where `n` at `ix` lives when it is stored or a view that only moves the index of a stored
   * tensor (reshape, permute, expand, slice); undefined when it must be computed.
   */
  address(n: Node, ix: Ix): Address | undefined;
  /** The value of type `n.dtype` at an address (as `at` would load it). */
  load(at: Address, n: Node): string;
}

export interface Address {
  readonly buffer: string;
  /** WGSL u32 element index into the buffer. */
  readonly index: string;
}

type ValueRule<O extends Op> = (n: Node<O>, ix: Ix, ctx: ValueContext) => string;

/**
 * How each op is lowered. `kernel` is the kind of kernel that materializes it (null: it never needs
 * one of its own - a leaf that lives in a buffer or is computed inline, or a view read through by
 * its consumer). `value` computes the op's value at an index from its sources; null means the op
 * must be materialized (reductions, matmul, scatter) and is read from memory.
 */
export interface Lowering<O extends Op> {
  readonly kernel: KernelKind | null;
  readonly value: ValueRule<O> | null;
}

const t = (n: Node) => scalarType(n.dtype);
const ew = <O extends Op>(f: (args: string[], n: Node<O>) => string): Lowering<O> => ({
  kernel: "elementwise",
  value: (n, ix, ctx) => f(n.src.map((s) => ctx.at(s, ix)), n),
});
const fn1 = (name: string) => ew(([a]) => `${name}(${a})`);
const fn2 = (name: string) => ew(([a, b]) => `${name}(${a}, ${b})`);
const op2 = (sym: string) => ew(([a, b]) => `(${a} ${sym} ${b})`);
/** WGSL orders no bools, so bool operands are compared as 0 / 1. */
const compare = (sym: string) =>
  ew(([a, b], n) =>
    n.src[0]!.dtype === "bool" ? `(select(0u, 1u, ${a}) ${sym} select(0u, 1u, ${b}))` : `(${a} ${sym} ${b})`
  );

function castExpr(value: string, from: string, to: string): string {
  if (from === to) return value;
  if (to === "bool") return `(${value} != ${literal(0, from as "f32")})`;
  if (from === "bool") return `select(${literal(0, to as "f32")}, ${literal(1, to as "f32")}, ${value})`;
  return `${to}(${value})`;
}

const random = (fn: "rand_uniform" | "rand_normal"): Lowering<"rand_uniform" | "rand_normal"> => ({
  kernel: null,
  value: (n, ix, ctx) => {
    const seed = n.src[0]!;
    const key = ctx.at(seed, Ix.axes([2], ["0u"]));
    const offset = ctx.at(seed, Ix.axes([2], ["1u"]));
    return `${fn}(${key}, ${offset}, ${n.arg.stream}u, ${ix.flat()})`;
  },
});

const stored: Lowering<"input" | "param"> = { kernel: null, value: null };

/** The exhaustive lowering table: a new op does not type-check until it is lowered here. */
export const LOWERING: { readonly [O in Op]: Lowering<O> } = {
  input: stored,
  param: stored,
  const: { kernel: null, value: (n) => literal(n.arg.value, t(n)) },
  iota: { kernel: null, value: (n, ix) => castExpr(ix.axes()[n.arg.axis]!, "u32", t(n)) },
  rand_uniform: random("rand_uniform"),
  rand_normal: random("rand_normal"),
  // WGSL has no unary minus on u32; 0 - x wraps as the interpreter does.
  neg: ew(([a], n) => (n.dtype === "u32" ? `(0u - ${a})` : `(-${a})`)),
  exp: fn1("exp"),
  log: fn1("log"),
  sqrt: fn1("sqrt"),
  rsqrt: fn1("inverseSqrt"),
  // tanh of a large argument overflows exp inside some drivers; it is +-1 to f32 precision past 15.
  tanh: ew(([a]) => `tanh(clamp(${a}, -15.0, 15.0))`),
  sigmoid: ew(([a]) => `(1.0 / (1.0 + exp(-${a})))`),
  erf: fn1("erf_f32"),
  sin: fn1("sin"),
  cos: fn1("cos"),
  abs: fn1("abs"),
  not: ew(([a]) => `(!${a})`),
  cast: ew(([a], n) => castExpr(a!, t(n.src[0]!), t(n))),
  add: op2("+"),
  sub: op2("-"),
  mul: op2("*"),
  div: op2("/"),
  pow: fn2("pow_f32"),
  max: ew(([a, b]) => `max(${a}, ${b})`),
  min: ew(([a, b]) => `min(${a}, ${b})`),
  lt: compare("<"),
  le: compare("<="),
  eq: op2("=="),
  ne: op2("!="),
  and: op2("&&"),
  or: op2("||"),
  where: ew(([c, a, b]) => `select(${b}, ${a}, ${c})`),
  sum: { kernel: "reduce", value: null },
  reduce_max: { kernel: "reduce", value: null },
  matmul: { kernel: "matmul", value: null },
  conv2d: { kernel: "conv", value: null },
  reshape: { kernel: null, value: (n, ix, ctx) => ctx.at(n.src[0]!, Ix.flat(n.src[0]!.shape, ix.flat())) },
  permute: {
    kernel: null,
    value: (n, ix, ctx) => {
      const axes = ix.axes();
      const src = new Array<string>(axes.length);
      n.arg.perm.forEach((p, i) => (src[p] = axes[i]!));
      return ctx.at(n.src[0]!, Ix.axes(n.src[0]!.shape, src));
    },
  },
  expand: {
    kernel: null,
    value: (n, ix, ctx) => {
      const s = n.src[0]!;
      return ctx.at(s, Ix.axes(s.shape, ix.axes().map((a, i) => (s.shape[i] === 1 ? "0u" : a))));
    },
  },
  slice: {
    kernel: null,
    value: (n, ix, ctx) =>
      ctx.at(
        n.src[0]!,
        Ix.axes(n.src[0]!.shape, ix.axes().map((a, i) => sumIndex([a, `${n.arg.starts[i]}u`]))),
      ),
  },
  pad: {
    kernel: null,
    value: (n, ix, ctx) => {
      const s = n.src[0]!;
      const axes = ix.axes();
      const inside: string[] = [];
      const shifted = axes.map((a, i) => {
        const b = n.arg.before[i]!;
        if (b === 0 && n.arg.after[i] === 0) return a;
        if (b > 0) inside.push(`${a} >= ${b}u`);
        inside.push(`${a} < ${b + s.shape[i]!}u`);
        return b > 0 ? `(${a} - ${b}u)` : a;
      });
      const v = () => ctx.at(s, Ix.axes(s.shape, shifted));
      if (!inside.length) return v();
      return ctx.choose(t(n), [{ when: inside.join(" && "), value: v }, {
        when: "true",
        value: () => literal(n.arg.value, t(n)),
      }]);
    },
  },
  concat: {
    kernel: null,
    value: (n, ix, ctx) => {
      const axes = ix.axes();
      const a = n.arg.axis;
      let start = 0;
      // Piece k applies when the axis index is below its end; only that piece is computed.
      const cases = n.src.map((s) => {
        const from = start;
        start += s.shape[a]!;
        const shifted = Ix.axes(s.shape, axes.map((x, i) => (i === a && from > 0 ? `(${x} - ${from}u)` : x)));
        return {
          when: `${axes[a]} < ${start}u`,
          value: () => ctx.at(s, shifted),
          at: () => ctx.address(s, shifted),
        };
      });
      if (cases.length === 1) return cases[0]!.value();
      // Pieces stored in one buffer: select the address, then load once (no branch per element,
      // which costs a matmul operand on lavapipe several times its load).
      const at = cases.map((c) => c.at());
      const buffer = at[0]?.buffer;
      if (at.every((x) => x !== undefined && x.buffer === buffer)) {
        const index = at.reduceRight(
          (inner, x, k) =>
            k === at.length - 1 ? x!.index : `select(${inner}, ${x!.index}, ${cases[k]!.when})`,
          "",
        );
        return ctx.load({ buffer: buffer!, index }, n);
      }
      return ctx.choose(t(n), cases);
    },
  },
  gather: {
    kernel: "elementwise",
    value: (n, ix, ctx) => {
      const [table, index] = [n.src[0]!, n.src[1]!];
      const axes = ix.axes();
      const k = index.shape.length;
      const row = `u32(${ctx.at(index, Ix.axes(index.shape, axes.slice(0, k)))})`;
      const v = ctx.at(table, Ix.axes(table.shape, [row, ...axes.slice(k)]));
      return `select(${literal(0, t(n))}, ${v}, ${row} < ${table.shape[0]}u)`;
    },
  },
  scatter_add: { kernel: "scatter", value: null },
  attention: { kernel: "attention", value: null },
  attention_grad_q: { kernel: "attention_grad_q", value: null },
  attention_grad_kv: { kernel: "attention_grad_kv", value: null },
};

/** Elements of a node, for cost accounting. */
export const elements = (n: Node) => size(n.shape);
