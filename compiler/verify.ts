import {
  ALL_LAYOUT_FIELDS,
  DTYPES,
  fmtShape,
  IRError,
  type Node,
  type Op,
  type OpArgs,
  OPS,
  SHAPE_RULES,
} from "./ir/mod.ts";

/**
 * The IR verifier: checks the invariants every pass may rely on, so tests can run it between passes
 * and a broken pass is caught where it broke the graph, not three stages later. It is one walk over
 * the graph plus one shape-rule call per node.
 *
 * Checked per node: the op is known, the arity matches `OPS[op].arity`, every source is a node,
 * sources are older than their consumer (node() numbers them in creation order) and form no cycle,
 * the arg has exactly the op's fields with integer sizes/axes and no NaN, and re-running the op's
 * shape rule gives the stored shape and dtype.
 */
export function verify(roots: readonly Node[]): void {
  const state = new Map<number, "open" | "done">();
  const byId = new Map<number, Node>();
  roots.forEach((r, i) => {
    if (!isNodeLike(r)) throw new IRError(`root ${i} is not a node (got ${String(r)})`);
    visit(r, state, byId);
  });
}

/** The fields of each op's `arg` (null args have none); exhaustive, so a new op must list its own. */
const ARG_FIELDS: { readonly [O in Op]: readonly (keyof OpArgs[O] & string)[] } = {
  input: ["name", "shape", "dtype"],
  param: ["path", "shape", "dtype"],
  const: ["value", "shape", "dtype"],
  iota: ["shape", "axis", "dtype"],
  rand_uniform: ["shape", "stream"],
  rand_normal: ["shape", "stream"],
  neg: [],
  exp: [],
  log: [],
  sqrt: [],
  rsqrt: [],
  tanh: [],
  sigmoid: [],
  erf: [],
  sin: [],
  cos: [],
  abs: [],
  not: [],
  cast: ["dtype"],
  add: [],
  sub: [],
  mul: [],
  div: [],
  pow: [],
  max: [],
  min: [],
  lt: [],
  le: [],
  eq: [],
  ne: [],
  and: [],
  or: [],
  where: [],
  sum: ["axes"],
  reduce_max: ["axes"],
  matmul: [],
  conv2d: ["stride", "padding", "groups"],
  reshape: ["shape"],
  permute: ["perm"],
  expand: ["shape"],
  slice: ["starts", "ends"],
  pad: ["before", "after", "value"],
  concat: ["axis"],
  gather: [],
  scatter_add: ["rows"],
  attention: ["mask", "scale", "fields"],
  attention_grad_q: ["mask", "scale", "fields"],
  attention_grad_kv: ["mask", "scale", "fields"],
};

/** Depth-first with an explicit stack (graphs are deep: one chain per layer). */
function visit(root: Node, state: Map<number, "open" | "done">, byId: Map<number, Node>) {
  const stack: [Node, number][] = [[root, 0]];
  const path: Node[] = []; // the open chain from the root, to print a cycle
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [n, i] = top;
    if (i === 0) {
      if (state.get(n.id) === "done") {
        checkUniqueId(n, byId);
        stack.pop();
        continue;
      }
      checkUniqueId(n, byId);
      checkLocal(n);
      state.set(n.id, "open");
      path.push(n);
    }
    if (i < n.src.length) {
      top[1]++;
      const s = n.src[i]!;
      const st = state.get(s.id);
      if (st === "open") {
        const cycle = [...path.slice(path.indexOf(s)), s].map((m) => `%${m.id} ${m.op}`).join(" -> ");
        throw new IRError(`${where(n)}: the graph has a cycle: ${cycle}`);
      }
      stack.push([s, 0]);
    } else {
      checkOrder(n);
      checkType(n);
      state.set(n.id, "done");
      path.pop();
      stack.pop();
    }
  }
}

function isNodeLike(x: unknown): x is Node {
  return typeof x === "object" && x !== null && typeof (x as { id?: unknown }).id === "number" &&
    Array.isArray((x as { src?: unknown }).src);
}

function where(n: Node): string {
  return `%${n.id} ${n.op}${n.site ? ` (built at ${n.site})` : ""}`;
}

function checkUniqueId(n: Node, byId: Map<number, Node>) {
  const other = byId.get(n.id);
  if (other === undefined) byId.set(n.id, n);
  else if (other !== n) throw new IRError(`${where(n)}: id ${n.id} is also used by ${where(other)}`);
}

/** Everything that does not need the sources' types: op, arity, sources, arg, stored type. */
function checkLocal(n: Node) {
  if (!Object.hasOwn(OPS, n.op)) throw new IRError(`${where(n)}: unknown op "${n.op}"`);
  const arity = OPS[n.op].arity;
  if (arity !== "many" && n.src.length !== arity) {
    throw new IRError(`${where(n)}: takes ${arity} source(s), has ${n.src.length}`);
  }
  n.src.forEach((s, i) => {
    if (!isNodeLike(s)) throw new IRError(`${where(n)}: source ${i} is missing (got ${String(s)})`);
  });
  checkArg(n);
  if (!DTYPES.includes(n.dtype)) throw new IRError(`${where(n)}: unknown dtype "${n.dtype}"`);
  if (!Array.isArray(n.shape) || !n.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new IRError(`${where(n)}: stored shape ${fmtShape(n.shape)} has a bad dimension`);
  }
}

function checkArg(n: Node) {
  const fields: readonly string[] = ARG_FIELDS[n.op];
  if (fields.length === 0) {
    if (n.arg !== null) throw new IRError(`${where(n)}: takes no arg, got ${JSON.stringify(n.arg)}`);
    return;
  }
  if (typeof n.arg !== "object" || n.arg === null) {
    throw new IRError(`${where(n)}: needs an arg with ${fields.join(", ")}, got ${String(n.arg)}`);
  }
  const arg = n.arg as unknown as Record<string, unknown>;
  const extra = Object.keys(arg).filter((k) => !fields.includes(k));
  if (extra.length) throw new IRError(`${where(n)}: unexpected arg field(s) ${extra.join(", ")}`);
  for (const k of fields) {
    const v = arg[k];
    const bad = (what: string) => new IRError(`${where(n)}: arg ${k} = ${JSON.stringify(v)} ${what}`);
    if (v === undefined) throw bad("is missing");
    // Every numeric arg except a fill value or a scale is a size, axis, offset or count.
    if (typeof v === "number") {
      const ok = k === "value" ? !Number.isNaN(v) : k === "scale" ? Number.isFinite(v) : Number.isInteger(v);
      if (!ok) throw bad("is not a valid number");
    } else if (k === "mask") {
      if (typeof v !== "object" || v === null || typeof (v as { kind?: unknown }).kind !== "string") {
        throw bad("is not a mask rule");
      }
    } else if (k === "fields") {
      if (!Array.isArray(v) || !v.every((f) => (ALL_LAYOUT_FIELDS as readonly unknown[]).includes(f))) {
        throw bad(`is not a list of layout fields (${ALL_LAYOUT_FIELDS.join(", ")})`);
      }
    } else if (Array.isArray(v)) {
      if (!v.every(Number.isInteger)) throw bad(`holds a non-integer (${fmtShape(v)})`);
    } else if (k === "dtype") {
      if (!DTYPES.includes(v as never)) throw bad("is not a dtype");
    } else if (typeof v !== "string") throw bad("has the wrong type");
  }
}

/** Checked after the descent, so that a cycle is reported as a cycle, not as a misnumbered source. */
function checkOrder(n: Node) {
  n.src.forEach((s, i) => {
    if (s.id >= n.id) {
      throw new IRError(`${where(n)}: source ${i} (%${s.id} ${s.op}) is not older than its consumer`);
    }
  });
}

/** Re-runs the shape rule; the sources are verified by now, so a failure is this node's fault. */
function checkType(n: Node) {
  let expected: { shape: readonly number[]; dtype: string };
  try {
    expected = (SHAPE_RULES[n.op] as (src: readonly Node[], arg: unknown) => typeof expected)(n.src, n.arg);
  } catch (e) {
    const sources = n.src.map((s) => `%${s.id}: ${s.dtype}${fmtShape(s.shape)}`).join(", ");
    throw new IRError(`${where(n)}: its shape rule rejects it (${(e as Error).message}); sources ${sources}`);
  }
  const same = expected.dtype === n.dtype && expected.shape.length === n.shape.length &&
    expected.shape.every((d, i) => d === n.shape[i]);
  if (!same) {
    throw new IRError(
      `${where(n)}: stored type ${n.dtype}${fmtShape(n.shape)} differs from its shape rule's ` +
        `${expected.dtype}${fmtShape(expected.shape)}`,
    );
  }
}
