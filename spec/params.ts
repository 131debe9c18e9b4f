import { type DType, fmtShape, node, SpecError, userSite } from "../compiler/ir/mod.ts";
import { Tensor } from "./tensor.ts";

/** How a parameter starts. `std`/`bound` are absolute; `scaledNormal` divides by sqrt(2 * depth). */
export type Init =
  | { kind: "normal"; std: number }
  | { kind: "uniform"; bound: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "values"; data: readonly number[] };

export const normal = (std: number): Init => ({ kind: "normal", std });
export const uniform = (bound: number): Init => ({ kind: "uniform", bound });
export const zeros = (): Init => ({ kind: "zeros" });
export const ones = (): Init => ({ kind: "ones" });
/** GPT-2 style residual-projection init: std / sqrt(2 * depth). */
export const scaledNormal = (std: number, depth: number): Init => ({
  kind: "normal",
  std: std / Math.sqrt(2 * depth),
});

/** A declared parameter: shape, dtype, initializer, and whether AdamW decays it. */
export interface ParamDecl<D extends DType = DType, R extends number = number> {
  readonly kind: "param";
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly init: Init;
  readonly decay: boolean;
  /** Constants of the model (tables): no gradient, no update, but saved with the parameters. */
  readonly frozen: boolean;
  readonly site: string | undefined;
  readonly __rank?: R;
}

export function param<const S extends readonly number[]>(
  shape: S,
  init: Init,
  opts: { decay?: boolean; dtype?: "f32" | "f16" } = {},
): ParamDecl<"f32", S["length"]> {
  for (const d of shape) {
    if (!Number.isInteger(d) || d <= 0) {
      throw new SpecError("param", `shape ${fmtShape(shape)} needs positive integer sizes`, userSite());
    }
  }
  // Matrices decay by default; vectors (norm gains, biases) do not, as in GPT-style training.
  return {
    kind: "param",
    shape,
    dtype: (opts.dtype ?? "f32") as "f32",
    init,
    decay: opts.decay ?? shape.length >= 2,
    frozen: false,
    site: userSite(),
  };
}

/**
 * A constant the model carries (a noise-schedule table, a fixed embedding): it lives with the
 * parameters, so specs stay self-contained and checkpoints complete, but gets no gradient and no
 * optimizer update.
 */
export function constant<const S extends readonly number[]>(
  shape: S,
  values: ArrayLike<number>,
): ParamDecl<"f32", S["length"]> {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) {
    throw new SpecError(
      "constant",
      `${values.length} values given for shape ${fmtShape(shape)} (${n} needed)`,
      userSite(),
    );
  }
  return {
    kind: "param",
    shape,
    dtype: "f32",
    init: { kind: "values", data: Array.from(values) },
    decay: false,
    frozen: true,
    site: userSite(),
  };
}

/** A parameter group with a forward function: a layer. Materialized, it is callable and exposes its params. */
export interface ModuleDecl<P extends ParamTree, F extends (...args: never[]) => unknown> {
  readonly kind: "module";
  readonly params: P;
  // Stored with an erased argument so that `Materialized` can infer F without unfolding itself.
  readonly apply: (p: never) => F;
}

export function module<P extends ParamTree, F extends (...args: never[]) => unknown>(
  params: P,
  apply: (p: Materialized<P>) => F,
): ModuleDecl<P, F> {
  return { kind: "module", params, apply: apply as unknown as (p: never) => F };
}

export type ParamTree =
  | ParamDecl
  | { readonly kind: "module"; readonly params: ParamTree; readonly apply: (p: never) => unknown }
  | readonly ParamTree[]
  | { readonly [k: string]: ParamTree };

export type Materialized<T> = T extends ParamDecl<infer D, infer R> ? Tensor<D, R>
  : T extends { readonly kind: "module"; readonly params: infer P; readonly apply: (p: never) => infer F }
    ? F & { readonly [K in keyof P]: Materialized<P[K]> }
  : T extends readonly unknown[] ? { readonly [K in keyof T]: Materialized<T[K]> }
  : { readonly [K in keyof T]: Materialized<T[K]> };

/** One parameter of a traced model, by its tree path (`blocks.3.attn.wq`), the checkpoint name. */
export interface ParamEntry {
  readonly path: string;
  readonly decl: ParamDecl;
}

const RESERVED = new Set(["name", "length", "prototype", "call", "apply", "bind", "caller", "arguments"]);

/** Turns a declared tree into traced tensors and callable layers, listing every parameter by path. */
export function materialize(tree: ParamTree, entries: ParamEntry[], prefix = ""): unknown {
  const at = (k: string | number) => (prefix ? `${prefix}.${k}` : `${k}`);
  const t = tree;
  if (isParam(t)) {
    entries.push({ path: prefix, decl: t });
    return new Tensor(node("param", [], { path: prefix, shape: t.shape, dtype: t.dtype }, t.site));
  }
  if (isModule(t)) {
    const m = t as unknown as AnyModule;
    const inner = materialize(m.params, entries, prefix) as Record<string, unknown>;
    const fn = m.apply(inner as never);
    for (const k of Object.keys(inner)) {
      if (RESERVED.has(k)) {
        throw new SpecError("module", `parameter name "${k}" at ${at(k)} is reserved; rename it`, userSite());
      }
    }
    return Object.assign(fn as object, inner);
  }
  if (Array.isArray(t)) return (t as readonly ParamTree[]).map((c, i) => materialize(c, entries, at(i)));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(t as Record<string, ParamTree>)) {
    if (k.includes(".")) {
      throw new SpecError(
        "params",
        `the name "${k}" at ${at(k)} may not contain "." (it separates path parts)`,
        userSite(),
      );
    }
    out[k] = materialize(v as ParamTree, entries, at(k));
  }
  return out;
}

function isParam(t: ParamTree): t is ParamDecl {
  return !Array.isArray(t) && (t as ParamDecl).kind === "param";
}
interface AnyModule {
  kind: "module";
  params: ParamTree;
  apply: (p: never) => unknown;
}
function isModule(t: ParamTree): boolean {
  return !Array.isArray(t) && (t as { kind?: unknown }).kind === "module";
}
