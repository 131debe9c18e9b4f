/**
 * The PyTorch rule table: one Python expression per IR op, beside the WGSL lowering and the
 * interpreter (an exhaustive record, so a new op does not type-check until it has a rule here).
 * Every rule reproduces the interpreter's semantics (compiler/interpreter.ts): integer results
 * wrap to 32 bits, float -> int saturates, out-of-range gather rows read zero, a fully masked
 * attention row gives o = 0. Floats use the module's dtype `dt` (float64 for the numeric check,
 * float32 for training); i32 / u32 are held as int64 (exact products before wrapping); bool is bool.
 */
import {
  type DType,
  isFloat,
  isInt,
  type LayoutField,
  type MaskExpr,
  type Node,
  type Op,
} from "../compiler/ir/mod.ts";

/** What a rule sees: the node, its sources' Python names, and the emitter's services. */
export interface EmitContext {
  /** The Python expression that reads parameter `path` (an attribute chain on `self`). */
  readonly param: (path: string) => string;
  /** The name of the Python mask function for `mask` (emitted once per distinct rule). */
  readonly maskFunction: (mask: MaskExpr, fields: readonly LayoutField[]) => string;
  /** For a random op: the Python expression of its first counter (row offset times row size). */
  readonly randomFirst: (n: Node<"rand_uniform" | "rand_normal">) => string;
}

type Rule<O extends Op> = (n: Node<O>, src: readonly string[], ctx: EmitContext) => string;

/** A Python number literal that parses back to exactly `x`. */
export function pyNumber(x: number): string {
  if (Number.isNaN(x)) return `float("nan")`;
  if (x === Infinity) return `float("inf")`;
  if (x === -Infinity) return `float("-inf")`;
  if (Object.is(x, -0)) return "-0.0";
  return String(x);
}

const tuple = (xs: readonly number[]) => (xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(", ")})`);

/** The torch dtype expression of an IR dtype. */
export function torchDtype(d: DType): string {
  return isFloat(d) ? "dt" : d === "bool" ? "torch.bool" : "torch.int64";
}

/** Wraps an integer result to the node's 32-bit type. */
function wrapInt(n: Node, expr: string): string {
  return n.dtype === "i32" ? `wrap_i32(${expr})` : n.dtype === "u32" ? `wrap_u32(${expr})` : expr;
}

const unary = (f: string): Rule<Op> => (_n, [x]) => `${f}(${x})`;
const arith = (op: string): Rule<Op> => (n, [a, b]) => wrapInt(n, `${a} ${op} ${b}`);
const compare = (op: string): Rule<Op> => (_n, [a, b]) => `${a} ${op} ${b}`;
const logical = (f: string): Rule<Op> => (n, [a, b]) => {
  const bool = (s: string, src: Node) => (src.dtype === "bool" ? s : `(${s} != 0)`);
  const expr = `${f}(${bool(a!, n.src[0]!)}, ${bool(b!, n.src[1]!)})`;
  return n.dtype === "bool" ? expr : `${expr}.to(${torchDtype(n.dtype)})`;
};

function castRule(n: Node<"cast">, [x]: readonly string[]): string {
  const from = n.src[0]!.dtype;
  const to = n.dtype;
  if (isFloat(from) && to === "i32") return `float_to_int(${x}, -2147483648, 2147483647)`;
  if (isFloat(from) && to === "u32") return `float_to_int(${x}, 0, 4294967295)`;
  if (to === "bool") return `(${x} != 0)`;
  if (isInt(from) && isInt(to)) return wrapInt(n, x!);
  return `${x}.to(${torchDtype(to)})`;
}

function random(normal: boolean): Rule<"rand_uniform" | "rand_normal"> {
  return (n, [seed], ctx) =>
    `random_tensor(${seed}, ${n.arg.stream}, ${tuple(n.arg.shape)}, ${ctx.randomFirst(n)}, ` +
    `${normal ? "True" : "False"}, dt, dev)`;
}

function sliceRule(n: Node<"slice">, [x]: readonly string[]): string {
  const { starts, ends } = n.arg;
  return `${x}[${starts.map((s, i) => `${s}:${ends[i]}`).join(", ")}]`;
}

/** F.pad takes (before, after) pairs from the last axis to the first. */
function padRule(n: Node<"pad">, [x]: readonly string[]): string {
  const { before, after, value } = n.arg;
  const pairs: number[] = [];
  for (let a = before.length - 1; a >= 0; a--) pairs.push(before[a]!, after[a]!);
  return `F.pad(${x}, ${tuple(pairs)}, value=${pyNumber(value)})`;
}

function attentionRule(n: Node<"attention">, src: readonly string[], ctx: EmitContext): string {
  const [q, k, v, ...fields] = src;
  const t = n.src[0]!.shape[2]!;
  const mask = `${ctx.maskFunction(n.arg.mask, n.arg.fields)}(${[...fields, String(t)].join(", ")})`;
  return `masked_attention(${q}, ${k}, ${v}, ${mask}, ${pyNumber(n.arg.scale)})`;
}

const backwardOnly = (op: string): Rule<Op> => () => {
  throw new Error(
    `${op} is a backward-pass op; the exporter emits the forward graph and leaves the backward to autograd`,
  );
};

export const TORCH_RULES: { readonly [O in Op]: Rule<O> } = {
  input: (n) => `x[${JSON.stringify(n.arg.name)}]`,
  param: (n, _s, ctx) => ctx.param(n.arg.path),
  const: (n) =>
    `torch.full(${tuple(n.arg.shape)}, ${pyNumber(n.arg.value)}, dtype=${torchDtype(n.dtype)}, device=dev)`,
  iota: (n) => {
    const view = n.arg.shape.map((d, i) => (i === n.arg.axis ? d : 1));
    return `torch.arange(${n.arg.shape[n.arg.axis]}, dtype=${torchDtype(n.dtype)}, device=dev)` +
      `.reshape(${tuple(view)}).expand(${tuple(n.arg.shape)})`;
  },
  rand_uniform: random(false),
  rand_normal: random(true),
  neg: (n, [x]) => wrapInt(n, `-${x}`),
  exp: unary("torch.exp"),
  log: unary("torch.log"),
  sqrt: unary("torch.sqrt"),
  rsqrt: unary("torch.rsqrt"),
  tanh: unary("torch.tanh"),
  sigmoid: unary("torch.sigmoid"),
  erf: unary("torch.erf"),
  sin: unary("torch.sin"),
  cos: unary("torch.cos"),
  abs: unary("torch.abs"),
  not: (n, [x]) => (n.src[0]!.dtype === "bool" ? `~${x}` : `(${x} == 0).to(${torchDtype(n.dtype)})`),
  cast: castRule,
  add: arith("+"),
  sub: arith("-"),
  mul: arith("*"),
  div: (n, [a, b]) => (isInt(n.dtype) ? wrapInt(n, `int_div(${a}, ${b})`) : `${a} / ${b}`),
  pow: (_n, [a, b]) => `torch.pow(${a}, ${b})`,
  max: (_n, [a, b]) => `torch.maximum(${a}, ${b})`,
  min: (_n, [a, b]) => `torch.minimum(${a}, ${b})`,
  lt: compare("<"),
  le: compare("<="),
  eq: compare("=="),
  ne: compare("!="),
  and: logical("torch.logical_and"),
  or: logical("torch.logical_or"),
  where: (n, [c, a, b]) => `torch.where(${n.src[0]!.dtype === "bool" ? c : `${c} != 0`}, ${a}, ${b})`,
  sum: (n, [x]) => (n.arg.axes.length ? wrapInt(n, `${x}.sum(dim=${tuple(n.arg.axes)}, keepdim=True)`) : x!),
  reduce_max: (
    n,
    [x],
  ) => (n.arg.axes.length ? `torch.amax(${x}, dim=${tuple(n.arg.axes)}, keepdim=True)` : x!),
  matmul: (n, [a, b]) => wrapInt(n, `torch.matmul(${a}, ${b})`),
  reshape: (n, [x]) => `${x}.reshape(${tuple(n.arg.shape)})`,
  permute: (n, [x]) => `${x}.permute(${tuple(n.arg.perm)})`,
  expand: (n, [x]) => `${x}.expand(${tuple(n.arg.shape)})`,
  slice: sliceRule,
  pad: padRule,
  concat: (n, src) => `torch.cat([${src.join(", ")}], dim=${n.arg.axis})`,
  gather: (_n, [table, index]) => `gather_rows(${table}, ${index})`,
  // NHWC / [KH, KW, Cin/g, Cout] in the IR; torch wants NCHW / [Cout, Cin/g, KH, KW].
  // NHWC / [KH, KW, Cin, Cout] to torch's NCHW / [Cout, Cin, KH, KW]; contiguous, as torch's CPU
  // backward ("slow_conv2d: grad_weight must be contiguous") needs.
  conv2d: (n, [x, w]) =>
    `torch.nn.functional.conv2d(${x}.permute(0, 3, 1, 2).contiguous(), ${w}.permute(3, 2, 0, 1).contiguous(), ` +
    `stride=${n.arg.stride}, padding=${n.arg.padding}, groups=${n.arg.groups}).permute(0, 2, 3, 1)`,
  scatter_add: (n, [index, updates]) => `scatter_add_rows(${index}, ${updates}, ${n.arg.rows})`,
  attention: attentionRule,
  attention_grad_q: backwardOnly("attention_grad_q"),
  attention_grad_kv: backwardOnly("attention_grad_kv"),
};

/** The Python expression of node `n` over its sources' names. */
export function emitNode(n: Node, src: readonly string[], ctx: EmitContext): string {
  return (TORCH_RULES[n.op] as Rule<Op>)(n, src, ctx);
}
