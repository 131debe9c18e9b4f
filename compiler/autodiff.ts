import { fmtShape, isFloat, type Node, node, type Op, SpecError, toposort, withSite } from "./ir/mod.ts";
import { VJP, type VjpRule } from "./vjp_rules.ts";

export { VJP, type VjpRule } from "./vjp_rules.ts";

/**
 * Reverse-mode autodiff that emits the backward pass as IR: the cotangents are ordinary nodes built
 * from the forward ones, so the backward graph is compiled, fused and checked like any other.
 */

const describe = (n: Node) => `${n.op} ${n.dtype}${fmtShape(n.shape)}`;

function zerosLike(n: Node): Node {
  return node("const", [], { value: 0, shape: n.shape, dtype: n.dtype });
}

function sameType(a: Node, b: Node): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length &&
    a.shape.every((d, i) => d === b.shape[i]);
}

function checkWrt(wrt: readonly Node[]) {
  for (const w of wrt) {
    if (!isFloat(w.dtype)) {
      throw new SpecError(
        "grad",
        `cannot take the gradient with respect to ${describe(w)}: only f32/f16 tensors carry gradients ` +
          `(integer and bool values such as indices and masks are not differentiable)`,
        w.site,
      );
    }
  }
}

/** Ids of the nodes on some path to one of `wrt` (including `wrt` themselves), in `order`. */
function leadingToWrt(order: readonly Node[], wrt: readonly Node[]): Set<number> {
  const leads = new Set(wrt.map((w) => w.id));
  for (const n of order) if (n.src.some((s) => leads.has(s.id))) leads.add(n.id);
  return leads;
}

/**
 * Pulls `cotangents` (one per output, same shape and dtype) back through the graph and returns the
 * cotangent of each of `wrt`: the sum over every path, or zeros where no path exists.
 */
export function vjp(outputs: readonly Node[], cotangents: readonly Node[], wrt: readonly Node[]): Node[] {
  if (outputs.length !== cotangents.length) {
    throw new SpecError("vjp", `${outputs.length} outputs but ${cotangents.length} cotangents`, undefined);
  }
  checkWrt(wrt);
  const order = toposort(outputs);
  const leads = leadingToWrt(order, wrt);
  const total = new Map<number, Node>();
  const accumulate = (target: Node, ct: Node) => {
    const prev = total.get(target.id);
    total.set(target.id, prev ? withSite(target.site, () => node("add", [prev, ct], null)) : ct);
  };
  outputs.forEach((o, i) => {
    const ct = cotangents[i]!;
    if (!sameType(o, ct)) {
      throw new SpecError(
        "vjp",
        `the cotangent ${describe(ct)} does not match the output ${describe(o)}`,
        o.site,
      );
    }
    if (isFloat(o.dtype) && leads.has(o.id)) accumulate(o, ct);
  });

  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    const ct = total.get(n.id);
    const rule = VJP[n.op] as VjpRule<Op> | "nondifferentiable";
    if (!ct || rule === "nondifferentiable") continue;
    const pulled = withSite(n.site, () => rule(n, ct));
    n.src.forEach((s, k) => {
      const c = pulled[k];
      if (c && isFloat(s.dtype) && leads.has(s.id)) accumulate(s, c);
    });
  }
  return wrt.map((w) => total.get(w.id) ?? zerosLike(w));
}

/**
 * The gradient of a scalar `loss` (shape []) with respect to each of `wrt`; with `seed` s, of
 * s * loss (a loss-scaled backward pass whose results the optimizer unscales: compile.ts).
 */
export function grad(loss: Node, wrt: readonly Node[], seed = 1): Node[] {
  return vjp([loss], [lossSeed(loss, seed)], wrt);
}

/** The cotangent a backward pass of scalar `loss` starts from. */
function lossSeed(loss: Node, value: number): Node {
  if (loss.shape.length !== 0 || !isFloat(loss.dtype)) {
    throw new SpecError(
      "grad",
      `the loss must be a float scalar (shape []), got ${describe(loss)}; reduce it with sum or mean first`,
      loss.site,
    );
  }
  return node("const", [], { value, shape: [], dtype: loss.dtype });
}

/**
 * `grad` with loss scaling: the backward pass starts from `scale` (so every intermediate gradient
 * is `scale` times larger, which keeps small ones representable where they are stored in f16), and
 * each result is multiplied by 1 / `scale` (exact for a power of two). `scale` 1 is `grad`.
 */
export function scaledGrad(loss: Node, wrt: readonly Node[], scale: number): Node[] {
  if (scale === 1) return grad(loss, wrt);
  return withSite(
    loss.site,
    () =>
      grad(loss, wrt, scale).map((g) =>
        node("mul", [g, node("const", [], { value: 1 / scale, shape: g.shape, dtype: g.dtype })], null)
      ),
  );
}

/** The loss itself next to its gradients, for a training step that reports the loss. */
export function valueAndGrad(loss: Node, wrt: readonly Node[]): { value: Node; grads: Node[] } {
  return { value: loss, grads: grad(loss, wrt) };
}
