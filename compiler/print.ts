import {
  ALL_OPS,
  type AttentionArg,
  describeMask,
  fmtShape,
  type Node,
  type Op,
  type OpArgs,
  OPS,
  toposort,
} from "./ir/mod.ts";

export interface PrintOptions {
  /** Append `# file:line:col` of the spec line that built each node (default true). */
  sites?: boolean;
  /** End with a `# N nodes: ...` op-count line (default true). */
  summary?: boolean;
}

/**
 * A graph as text, one node per line in topological order, for a person reading a trace:
 *
 *   %0 = param "l1.w" : f32[784, 256]          # examples/mlp.ts:6:24
 *   %2 = matmul(%1, %0) : f32[64, 256]         # examples/mlp.ts:9:5
 *   %3 = sum(%2) axes=[1] : f32[64, 1]
 *   loss = %3
 *
 * Ids are renumbered from 0 in print order, so the text depends only on the graph's structure and
 * sites, never on how many nodes were built before it.
 */
export function printGraph(outputs: Record<string, Node> | readonly Node[], opts: PrintOptions = {}): string {
  const named: [string, Node][] = Array.isArray(outputs)
    ? outputs.map((n, i): [string, Node] => [`out[${i}]`, n])
    : Object.entries(outputs);
  const order = toposort(named.map(([, n]) => n));
  const number = new Map(order.map((n, i) => [n.id, i]));
  const ref = (n: Node) => `%${number.get(n.id)}`;

  const bodies = order.map((n) => `${ref(n)} = ${describe(n, ref)} : ${n.dtype}${fmtShape(n.shape)}`);
  const width = Math.min(COMMENT_COLUMN, bodies.reduce((w, b) => Math.max(w, b.length), 0));
  const lines = bodies.map((body, i) => {
    const site = order[i]!.site;
    return opts.sites === false || site === undefined ? body : `${body.padEnd(width)}   # ${site}`;
  });
  for (const [name, n] of named) lines.push(`${name} = ${ref(n)}`);
  if (opts.summary !== false) lines.push(summary(order));
  return lines.join("\n");
}

/** Site comments line up at most this far right, so one long line does not push them all out. */
const COMMENT_COLUMN = 72;

function describe(n: Node, ref: (n: Node) => string): string {
  const arg = (ARG_TEXT[n.op] as (arg: unknown) => string)(n.arg);
  const call = OPS[n.op].arity === 0 ? n.op : `${n.op}(${n.src.map(ref).join(", ")})`;
  return arg ? `${call} ${arg}` : call;
}

/** `# 12 nodes: param 4, input 2, matmul 2, ...` in registry order (leaves first). */
function summary(order: readonly Node[]): string {
  const counts = new Map<Op, number>();
  for (const n of order) counts.set(n.op, (counts.get(n.op) ?? 0) + 1);
  const parts = ALL_OPS.filter((op) => counts.has(op)).map((op) => `${op} ${counts.get(op)}`);
  return `# ${order.length} node${order.length === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

const list = (xs: readonly number[]) => `[${xs.join(", ")}]`;

function num(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
}

const none = () => "";
const attentionText = (a: AttentionArg) => `mask=${describeMask(a.mask)} scale=${num(a.scale)}`;

/**
 * What each op shows besides its sources and result type. Args that the result type already says
 * (a reshape's shape, a cast's dtype, scatter_add's rows) are left out.
 */
const ARG_TEXT: { readonly [O in Op]: (arg: OpArgs[O]) => string } = {
  input: (a) => JSON.stringify(a.name),
  param: (a) => JSON.stringify(a.path),
  const: (a) => num(a.value),
  iota: (a) => `axis=${a.axis}`,
  rand_uniform: (a) => `stream=${a.stream}`,
  rand_normal: (a) => `stream=${a.stream}`,
  neg: none,
  exp: none,
  log: none,
  sqrt: none,
  rsqrt: none,
  tanh: none,
  sigmoid: none,
  erf: none,
  sin: none,
  cos: none,
  abs: none,
  not: none,
  cast: none,
  add: none,
  sub: none,
  mul: none,
  div: none,
  pow: none,
  max: none,
  min: none,
  lt: none,
  le: none,
  eq: none,
  ne: none,
  and: none,
  or: none,
  where: none,
  sum: (a) => `axes=${list(a.axes)}`,
  reduce_max: (a) => `axes=${list(a.axes)}`,
  matmul: none,
  conv2d: (a) => `stride=${a.stride} padding=${a.padding} groups=${a.groups}`,
  reshape: none,
  permute: (a) => `perm=${list(a.perm)}`,
  expand: none,
  slice: (a) => `[${a.starts.map((s, i) => `${s}:${a.ends[i]}`).join(", ")}]`,
  pad: (a) => `before=${list(a.before)} after=${list(a.after)} value=${num(a.value)}`,
  concat: (a) => `axis=${a.axis}`,
  gather: none,
  scatter_add: none,
  attention: (a) => attentionText(a),
  attention_grad_q: (a) => attentionText(a),
  attention_grad_kv: (a) => attentionText(a),
};
