/**
 * The attention masks of a spec, for `deno task explain`: per traced entry, each distinct rule its
 * attention ops evaluate (as spec code: `sameDocument() & (causal() | sameSpan("image"))`), how many
 * ops use it and the layout fields it reads. The plan keeps no rules (a kernel only evaluates its
 * rule), so they are read off the traced graph; trainStep and forward share the loss entry's.
 */
import { maskFields, type Node, toposort } from "../compiler/ir/mod.ts";
import { type AnyModel, maskSource, trace } from "../spec/mod.ts";

export interface AttentionMasks {
  /** The traced entry ("loss" for trainStep and forward) and the plan entries it serves. */
  readonly entry: string;
  readonly planEntries: readonly string[];
  readonly rules: readonly {
    readonly rule: string;
    readonly ops: number;
    readonly fields: readonly string[];
  }[];
}

/** The rules of the attention ops of each traced entry behind `planEntries`; entries without any are left out. */
export function attentionMasks(
  model: AnyModel,
  opts: { readonly config: Record<string, unknown>; readonly dims: Record<string, number> },
  planEntries: readonly string[],
): AttentionMasks[] {
  const byTraced = new Map<string, string[]>();
  for (const e of planEntries) {
    const traced = e === "trainStep" || e === "forward" ? "loss" : e;
    byTraced.set(traced, [...(byTraced.get(traced) ?? []), e]);
  }
  const out: AttentionMasks[] = [];
  for (const [entry, served] of byTraced) {
    const t = trace(model, { ...opts, entry });
    const rules = new Map<string, { rule: string; ops: number; fields: readonly string[] }>();
    const roots: Node[] = [...Object.values(t.outputs), ...t.state.map((s) => s.output)];
    for (const n of toposort(roots)) {
      if (n.op !== "attention") continue;
      const mask = (n as Node<"attention">).arg.mask;
      const rule = maskSource(mask);
      const seen = rules.get(rule) ?? { rule, ops: 0, fields: maskFields(mask) };
      rules.set(rule, { ...seen, ops: seen.ops + 1 });
    }
    if (rules.size) out.push({ entry, planEntries: served, rules: [...rules.values()] });
  }
  return out;
}

/** The masks as explain's text section (empty for a spec without attention). */
export function attentionMasksText(masks: readonly AttentionMasks[]): string[] {
  if (masks.length === 0) return [];
  return [
    "attention masks (query i may attend key j where the rule holds):",
    ...masks.flatMap((m) => [
      `  ${m.entry}${m.entry === m.planEntries.join(", ") ? "" : ` (${m.planEntries.join(", ")})`}:`,
      ...m.rules.map((r) =>
        `    ${r.rule}  [${r.ops} attention op${r.ops === 1 ? "" : "s"}; reads ${
          r.fields.length ? `layout ${r.fields.join(", ")}` : "no layout"
        }]`
      ),
    ]),
  ];
}
