import { isFloat, type Node, node, type Op, type OpArgs, OPS } from "../ir/mod.ts";
import { rewriteBottomUp } from "./rewrite.ts";

/**
 * Algebraic simplification before lowering. Common subexpressions are already shared (nodes are
 * hash-consed) and dead code is never reached (passes walk from the roots), so this pass rewrites
 * what autodiff and the DSL leave behind: identities (x + 0, x * 1, x / 1, reshape to the same shape,
 * identity permutes), chains of views (reshape of reshape, permute of permute), and elementwise ops
 * on constants, which fold to a constant. Returns the rewritten roots in the same order.
 */
export function simplify(roots: readonly Node[]): Node[] {
  return rewriteBottomUp(roots, rewrite);
}

/** The scalar value of a node that is a filled constant (possibly reshaped or broadcast). */
export function constantValue(n: Node): number | undefined {
  while (n.op === "reshape" || n.op === "expand") n = n.src[0]!;
  return n.op === "const" ? (n.arg as OpArgs["const"]).value : undefined;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

function filled(like: Node, value: number): Node {
  return node("const", [], { value, shape: like.shape, dtype: like.dtype });
}

/** Scalar semantics for constant folding; integer ops are left alone (wrapping rules). */
const FOLD: Partial<Record<Op, (...v: number[]) => number>> = {
  neg: (a) => -a,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (a) => 1 / Math.sqrt(a),
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
};

function rewrite(n: Node): Node {
  const [a, b] = [n.src[0], n.src[1]];
  const ca = a && constantValue(a);
  const cb = b && constantValue(b);
  switch (n.op) {
    case "add":
      if (cb === 0) return a!;
      if (ca === 0) return b!;
      break;
    case "sub":
      if (cb === 0) return a!;
      break;
    case "mul":
      if (cb === 1) return a!;
      if (ca === 1) return b!;
      break;
    case "div":
      if (cb === 1) return a!;
      break;
    case "neg":
      if (a!.op === "neg") return a!.src[0]!;
      break;
    case "cast":
      if (a!.dtype === n.dtype) return a!;
      break;
    case "where":
      if (n.src[1] === n.src[2]) return n.src[1]!;
      break;
    case "reshape":
      if (sameShape(a!.shape, n.shape)) return a!;
      if (a!.op === "reshape") return node("reshape", [a!.src[0]!], { shape: n.shape });
      break;
    case "expand":
      if (sameShape(a!.shape, n.shape)) return a!;
      break;
    case "permute": {
      const perm = (n.arg as OpArgs["permute"]).perm;
      if (perm.every((p, i) => p === i)) return a!;
      if (a!.op === "permute") {
        const inner = (a!.arg as OpArgs["permute"]).perm;
        const composed = perm.map((p) => inner[p]!);
        return composed.every((p, i) => p === i)
          ? a!.src[0]!
          : node("permute", [a!.src[0]!], { perm: composed });
      }
      break;
    }
    case "sum":
    case "reduce_max": {
      const axes = (n.arg as OpArgs["sum"]).axes;
      if (axes.every((ax) => a!.shape[ax] === 1)) return a!;
      break;
    }
  }
  // Fold elementwise float ops whose sources are all constants.
  const fold = FOLD[n.op];
  if (fold && OPS[n.op].kind === "elementwise" && isFloat(n.dtype)) {
    const values = n.src.map(constantValue);
    if (values.every((v) => v !== undefined)) return filled(n, fold(...(values as number[])));
  }
  return n;
}
