/**
 * A mask rule (compiler/ir/mask.ts) as the body of a Python function over the layout fields: the
 * boolean [B, T, S] mask that the exported attention applies, built from the same rule the WGSL
 * predicate and the interpreter evaluate. Queries are the last T of the S key positions.
 */
import {
  describeMask,
  foldMask,
  type LayoutField,
  type MaskExpr,
  type MaskRules,
} from "../compiler/ir/mod.ts";

/** Each leaf reads query-side fields `<f>_q` [B, T, 1], key-side `<f>_k` [B, 1, S], positions i [T, 1], j [1, S]. */
const PYTHON_MASK: MaskRules<string> = {
  all: () => "torch.ones((), dtype=torch.bool, device=i.device)",
  none: () => "torch.zeros((), dtype=torch.bool, device=i.device)",
  causal: () => "(j <= i)",
  sameDocument: () => "((doc_q >= 0) & (doc_q == doc_k))",
  sameSpan: ({ modality: m }) =>
    `((span_q >= 0) & (span_q == span_k) & (modality_q == ${m}) & (modality_k == ${m}))`,
  prefix: ({ n }) => `(j < ${n})`,
  inPrefix: () => "(prefix_k > 0)",
  window: ({ w }) => `((i - j).abs() < ${w})`,
  and: (e, sub) => `(${sub(e.a)} & ${sub(e.b)})`,
  or: (e, sub) => `(${sub(e.a)} | ${sub(e.b)})`,
  not: (e, sub) => `(~${sub(e.a)})`,
};

/**
 * `def NAME(<fields>, t)`: the mask [B, t, S] for layout fields [B, S] in the order the attention
 * op lists them (its `fields` argument).
 */
export function maskPython(name: string, mask: MaskExpr, fields: readonly LayoutField[]): string {
  const first = fields[0];
  const lines = [
    `def ${name}(${[...fields, "t"].join(", ")}):`,
    `    """${describeMask(mask)}: bool [B, t, S] from layout fields [B, S]."""`,
    ...fields.map((f) => `    ${f}_q, ${f}_k = query_key(${f}, t)`),
    `    s = ${first ? `${first}.shape[1]` : "t"}`,
    `    i, j = query_key_positions(s, t, ${first ? `${first}.device` : "None"})`,
    `    b = ${first ? `${first}.shape[0]` : "1"}`,
    `    return ${foldMask(mask, PYTHON_MASK)}.expand(b, t, s)`,
  ];
  return lines.join("\n");
}
