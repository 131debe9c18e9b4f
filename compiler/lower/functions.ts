import { fmtShape, type Node, OPS } from "../ir/mod.ts";
import { loadWord, scalarType } from "../../kernels/wgsl.ts";
import type { Ix } from "./index.ts";
import { type Address, LOWERING, type ValueContext } from "./values.ts";
import { arenaIndex } from "./arena_offsets.ts";

/** Where a stored tensor lives: a word offset in a named arena. */
export interface Location {
  readonly buffer: string;
  readonly offset: number;
}

/** Index expressions up to this many characters are written inline (see FunctionWriter.define). */
const INLINE_INDEX_CHARS = 48;

export type ValueRule = (n: Node, ix: Ix, ctx: ValueContext) => string;

/**
 * Writes the WGSL helper functions a kernel reads its inputs through. Inside one function every
 * value is bound once to a `let` (keyed by node and index), so a tensor read twice by an inlined
 * expression is loaded and computed once, and the text grows with the graph, not with its paths.
 */
export class FunctionWriter {
  readonly functions: string[] = [];

  constructor(
    private readonly location: ReadonlyMap<number, Location>,
    private readonly used: Map<string, "read" | "read_write">,
    /** The matmul whose value is the epilogue's `acc` parameter. */
    private readonly accumulator: Node | undefined,
    /** Buffers this kernel declares as arrays of vec4s (kernels/kernel.ts vectorBindingDecl). */
    readonly vectors: ReadonlySet<string> = new Set(),
  ) {}

  #load(buffer: string, index: string, m: Node): string {
    return loadWord(buffer, index, scalarType(m.dtype), this.vectors.has(buffer));
  }

  /** Adds a function written by hand (one that loops, for instance). */
  raw(text: string): void {
    this.functions.push(text);
  }

  define(
    name: string,
    params: readonly [string, string][],
    ret: string,
    body: (ctx: ValueContext) => string,
    /** The node whose value is the `acc` parameter here (default: the kernel's epilogue input). */
    accumulator: Node | undefined = this.accumulator,
  ): string {
    // Bound values of the current block; a `choose` case opens a block whose bindings stay inside it.
    let lines: string[] = [];
    let memo = new Map<string, string>();
    let count = 0;
    const bind = (key: string, expr: string) => {
      let v = memo.get(key);
      // A value that is already a name (a view passing its source through) needs no second name.
      if (v === undefined && /^v\d+$/.test(expr)) memo.set(key, v = expr);
      if (v === undefined) {
        v = `v${count++}`;
        lines.push(`  let ${v} = ${expr};`);
        memo.set(key, v);
      }
      return v;
    };
    // An index expression longer than this is bound to a `let` before a node reads it; shorter
    // ones (`i`, `bi * 720u + j`) stay inline, so ordinary kernels read as before.
    const bindIndex = (expr: string) => expr.length <= INLINE_INDEX_CHARS ? expr : bind(`ix:${expr}`, expr);
    const ctx: ValueContext = {
      at: (m, given) => {
        if (m === accumulator) return "acc";
        const ix = given.bound(bindIndex);
        const key = `${m.id}@${ix.key()}`;
        const at = this.location.get(m.id);
        if (at) {
          if (!this.used.has(at.buffer)) this.used.set(at.buffer, "read");
          return bind(key, this.#load(at.buffer, arenaIndex(at.offset, ix.flat()), m));
        }
        const rule = LOWERING[m.op].value as ValueRule | null;
        if (!rule) {
          throw new Error(`internal: ${m.op} ${fmtShape(m.shape)} must be stored but has no location`);
        }
        if (m.op === "const") return rule(m, ix, ctx);
        return memo.get(key) ?? bind(key, rule(m, ix, ctx));
      },
      address: (m, ix) => {
        const at = this.location.get(m.id);
        if (at) return { buffer: at.buffer, index: arenaIndex(at.offset, ix.flat()) };
        const rule = LOWERING[m.op].value as ValueRule | null;
        if (!rule || OPS[m.op].kind !== "movement") return undefined;
        // A view whose value is its source's value at a moved index: run its rule with a context
        // that records where the source is read instead of reading it.
        let found: Address | undefined;
        let reads = 0;
        const mark = "__address__";
        const probe: ValueContext = {
          at: (s, sx) => {
            reads++;
            found = ctx.address(s, sx);
            return mark;
          },
          choose: () => {
            reads = Infinity;
            return "";
          },
          address: () => undefined,
          load: () => "",
        };
        const value = rule(m, ix, probe);
        return value === mark && reads === 1 ? found : undefined;
      },
      load: (at, m) => {
        if (!this.used.has(at.buffer)) this.used.set(at.buffer, "read");
        return bind(`${at.buffer}@${at.index}`, this.#load(at.buffer, at.index, m));
      },
      choose: (type, cases) => {
        const out = `v${count++}`;
        const outer = { lines, memo };
        const text = [`  var ${out}: ${type};`];
        cases.forEach((c, i) => {
          [lines, memo] = [[], new Map(outer.memo)];
          const value = c.value();
          const opening = i === 0
            ? `if (${c.when})`
            : i === cases.length - 1
            ? "else"
            : `else if (${c.when})`;
          text.push(
            `  ${i === 0 ? "" : "} "}${opening} {`,
            ...lines.map((l) => `  ${l}`),
            `    ${out} = ${value};`,
          );
        });
        text.push("  }");
        [lines, memo] = [outer.lines, outer.memo];
        lines.push(...text);
        return out;
      },
    };
    const result = body(ctx);
    const signature = params.map(([p, t]) => `${p}: ${t}`).join(", ");
    this.functions.push(`fn ${name}(${signature}) -> ${ret} {\n${lines.join("\n")}\n  return ${result};\n}`);
    return name;
  }
}
