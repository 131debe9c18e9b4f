import type { DType } from "./dtype.ts";
import { ShapeMismatch, SpecError, userSite } from "./errors.ts";
import { OPS } from "./ops.ts";
import type { Op, OpArgs } from "./ops.ts";
import { inferType } from "./shape_rules.ts";

/**
 * The one IR node: immutable and hash-consed, so structurally equal nodes are the same object
 * (common-subexpression elimination for free). `site` is the user's spec line that built it.
 */
export interface Node<O extends Op = Op> {
  readonly id: number;
  readonly op: O;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly src: readonly Node[];
  readonly arg: OpArgs[O];
  readonly site: string | undefined;
}

let nextId = 0;
let siteOverride: string | undefined;

/**
 * Runs `f` with every node it builds stamped `site` (unless a node passes its own). Autodiff uses
 * it so that a backward node points at the forward line it differentiates.
 */
export function withSite<T>(site: string | undefined, f: () => T): T {
  const saved = siteOverride;
  siteOverride = site;
  try {
    return f();
  } finally {
    siteOverride = saved;
  }
}
const interned = new Map<string, WeakRef<Node>>();
const registry = new FinalizationRegistry<string>((key) => {
  const ref = interned.get(key);
  if (ref && ref.deref() === undefined) interned.delete(key);
});

/**
 * Builds (or finds) the node `op(src; arg)`, inferring and checking its shape and dtype. `site`
 * defaults to the user's spec line on the stack; declarations pass the line they were made on.
 */
export function node<O extends Op>(op: O, src: readonly Node[], arg: OpArgs[O], site?: string): Node<O> {
  const key = `${op}|${src.map((s) => s.id).join(",")}|${JSON.stringify(arg)}`;
  const found = interned.get(key)?.deref();
  if (found) return found as Node<O>;
  let type: { shape: readonly number[]; dtype: DType };
  try {
    const arity = OPS[op].arity;
    if (arity !== "many" && src.length !== arity) {
      throw new ShapeMismatch(`takes ${arity} source(s), got ${src.length}`);
    }
    type = inferType(op, src, arg);
  } catch (e) {
    if (e instanceof ShapeMismatch) throw new SpecError(op, e.message, site ?? siteOverride ?? userSite());
    throw e;
  }
  const made: Node<O> = Object.freeze({
    id: nextId++,
    op,
    dtype: type.dtype,
    shape: Object.freeze([...type.shape]),
    src: Object.freeze([...src]),
    arg: (arg === null ? arg : Object.freeze(arg)) as OpArgs[O],
    site: site ?? siteOverride ?? userSite(),
  });
  interned.set(key, new WeakRef(made));
  registry.register(made, key);
  return made;
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The nodes reachable from `roots`, each after its sources (a topological order). */
export function toposort(roots: readonly Node[]): Node[] {
  const order: Node[] = [];
  const seen = new Set<number>();
  const stack: [Node, number][] = roots.map((r) => [r, 0]);
  stack.reverse();
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [n, i] = top;
    if (i === 0 && seen.has(n.id)) {
      stack.pop();
      continue;
    }
    if (i < n.src.length) {
      top[1]++;
      const s = n.src[i]!;
      if (!seen.has(s.id)) stack.push([s, 0]);
    } else {
      stack.pop();
      if (!seen.has(n.id)) {
        seen.add(n.id);
        order.push(n);
      }
    }
  }
  return order;
}

export function isOp<O extends Op>(n: Node, op: O): n is Node<O> {
  return n.op === op;
}
