/**
 * The parameter tree as nn.Module classes: one class per spec module (a group of the tree), an
 * nn.ModuleList where the tree has a list (`blocks.0`, `blocks.1`, ...), and nn.Parameters named
 * like the leaves, so `state_dict()` keys are exactly this project's tree paths
 * (`backbone.blocks.3.attn.wq.w`) and a model.safetensors loads by name. The items of a list share
 * a class when their structure and shapes agree (every transformer block is one `BackboneBlocks`).
 */
import { fmtShape } from "../compiler/ir/mod.ts";
import { ExportError } from "./errors.ts";

export interface ExportedParam {
  readonly path: string;
  readonly shape: readonly number[];
  /** A constant of the model (a schedule table): no gradient, no update, saved with the rest. */
  readonly frozen: boolean;
  readonly decay: boolean;
}

type Tree = { kind: "param"; param: ExportedParam } | {
  kind: "group";
  path: string;
  children: Map<string, Tree>;
};

/** Names a generated attribute may not take: Python keywords and what nn.Module already defines. */
const RESERVED = new Set([
  ...["False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def"],
  ...["del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is"],
  ...["lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield"],
  ...["training", "forward", "eval", "train", "to", "cuda", "cpu", "type", "float", "double", "half"],
  ...["apply", "parameters", "named_parameters", "buffers", "children", "modules", "state_dict"],
  ...["load_state_dict", "register_buffer", "register_parameter", "add_module", "zero_grad", "extra_repr"],
  ...["requires_grad_", "share_memory", "get_parameter", "get_submodule", "get_buffer", "dump_patches"],
]);

function buildTree(params: readonly ExportedParam[]): Tree {
  const root: Tree = { kind: "group", path: "", children: new Map() };
  for (const p of params) {
    const parts = p.path.split(".");
    let at: Tree = root;
    parts.forEach((part, i) => {
      const isNumber = /^\d+$/.test(part);
      if (!isNumber && (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(part) || RESERVED.has(part))) {
        throw new ExportError(
          `parameter ${p.path}: "${part}" cannot be a PyTorch attribute name (a Python keyword or an ` +
            `nn.Module member); rename it in the spec`,
        );
      }
      if (at.kind !== "group") {
        throw new ExportError(`parameter ${p.path}: a prefix of it is itself a parameter`);
      }
      if (i === parts.length - 1) {
        at.children.set(part, { kind: "param", param: p });
        return;
      }
      let next = at.children.get(part);
      if (!next) {
        next = { kind: "group", path: parts.slice(0, i + 1).join("."), children: new Map() };
        at.children.set(part, next);
      }
      at = next;
    });
  }
  return root;
}

const isList = (t: Tree) =>
  t.kind === "group" && t.children.size > 0 && [...t.children.keys()].every((k, i) => k === String(i));

/** The structure and shapes of a subtree: groups with equal signatures share one class. */
function signature(t: Tree): string {
  if (t.kind === "param") return `${fmtShape(t.param.shape)}${t.param.frozen ? "c" : ""}`;
  return `{${[...t.children].map(([k, c]) => `${k}:${signature(c)}`).join(",")}}`;
}

const camel = (parts: readonly string[]) =>
  parts.map((p) => p.replace(/(^|_)([a-z0-9])/g, (_m, _u, c: string) => c.toUpperCase())).join("");

/** The Python attribute chain on `self` that reads `path`: `self.backbone.blocks[3].attn.wq.w`. */
export function attributeChain(path: string): string {
  return "self" + path.split(".").map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join("");
}

/** The module classes (leaves first) and the body lines of the root's `__init__`. */
export function moduleClasses(params: readonly ExportedParam[]): { classes: string; rootInit: string[] } {
  const root = buildTree(params);
  const classes: string[] = [];
  const bySignature = new Map<string, string>();
  const taken = new Set<string>(["Model"]);

  const className = (g: Tree & { kind: "group" }): string => {
    // Same path up to list indices and the same structure: the same class.
    const sig = `${g.path.replace(/\.\d+(?=\.|$)/g, ".*")} ${signature(g)}`;
    const known = bySignature.get(sig);
    if (known) return known;
    const parts = g.path.split(".");
    let name = camel(parts.filter((p) => !/^\d+$/.test(p)));
    if (taken.has(name)) name = camel(parts);
    for (let k = 2; taken.has(name); k++) name = `${camel(parts)}_${k}`;
    taken.add(name);
    bySignature.set(sig, name);
    classes.push(
      [
        `class ${name}(nn.Module):`,
        `    """${g.path}${shapesNote(g)}"""`,
        "",
        "    def __init__(self):",
        "        super().__init__()",
        ...initLines(g).map((l) => `        ${l}`),
      ].join("\n"),
    );
    return name;
  };

  const construct = (t: Tree): string => {
    if (t.kind === "param") {
      const dims = t.param.shape.join(", ");
      return `nn.Parameter(torch.zeros(${dims || "()"}), requires_grad=${t.param.frozen ? "False" : "True"})`;
    }
    if (isList(t)) return `nn.ModuleList([${[...t.children.values()].map(construct).join(", ")}])`;
    return `${className(t)}()`;
  };

  const initLines = (g: Tree & { kind: "group" }): string[] =>
    [...g.children].map(([k, c]) => {
      const note = c.kind === "param"
        ? `  # ${fmtShape(c.param.shape)}${c.param.frozen ? " constant" : ""}`
        : "";
      return `self.${k} = ${construct(c)}${note}`;
    });

  if (root.kind !== "group") throw new Error("the parameter tree has no root group");
  const rootInit = initLines(root);
  return { classes: classes.join("\n\n\n"), rootInit };
}

function shapesNote(g: Tree & { kind: "group" }): string {
  const leaves = [...g.children].filter(([, c]) => c.kind === "param");
  if (!leaves.length) return "";
  return ": " +
    leaves.map(([k, c]) => `${k} ${fmtShape((c as { param: ExportedParam }).param.shape)}`).join(", ");
}
