/**
 * One table per command: each flag declared once, with its parseArgs type and a line for a person.
 * `parseCommand` parses with that table, `--help` / `-h` prints the help generated from it (usage,
 * every flag with its meaning and default, examples) and exits 0, and an unknown flag is a usage
 * error that names it, suggests the nearest known flag and points at `--help`.
 */
import { parseArgs } from "node:util";
import { UsageError } from "../runtime/load_spec.ts";
import { nearest } from "../spec/suggest.ts";

/** One flag of a command. */
export interface Flag {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  /** A default parseArgs fills in (also said in the help unless `defaultText` says it better). */
  readonly default?: string | boolean | string[];
  /** The value's placeholder in the help, e.g. "N", "DIR", "key=value" (string flags). */
  readonly value?: string;
  /** What the flag does, one line. */
  readonly help: string;
  /** The default in words when it is not a parseArgs default, e.g. "the spec's training.steps". */
  readonly defaultText?: string;
  /** The command refuses to run without it (it checks that itself; the help says so). */
  readonly required?: boolean;
}

export type Flags = Record<string, Flag>;

/** `--set` and `--dim`, which every command that compiles a spec takes alike. */
export const SPEC_FLAGS = {
  set: {
    type: "string",
    value: "key=value",
    multiple: true,
    default: [],
    help: "override a config value of the spec; dotted for nested keys (backbone.dim=64)",
  },
  dim: { type: "string", value: "name=N", multiple: true, default: [], help: "set a named dim of the spec" },
} satisfies Flags;

/** A command: `deno task <name> <args> [flags]`. */
export interface Command<F extends Flags> {
  readonly name: string;
  /** The positional arguments as the synopsis shows them, e.g. "<spec.ts>" ("" for none). */
  readonly args: string;
  /** What the command does, a sentence or two. */
  readonly summary: string;
  readonly flags: F;
  /** Full command lines a person can paste. */
  readonly examples: readonly string[];
  /** More paragraphs after the flags (outputs, related commands). */
  readonly notes?: readonly string[];
}

/** Declares a command; the identity, so the flag table keeps its literal types for parseArgs. */
export function command<F extends Flags>(c: Command<F>): Command<F> {
  return c;
}

/** The one-line synopsis: `usage: deno task train <spec.ts> [--steps N] ...`. */
export function usageLine(c: Command<Flags>): string {
  const flags = Object.entries(c.flags).map(([name, f]) => {
    const text = `--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`;
    return `${f.required ? text : `[${text}]`}${f.multiple ? "..." : ""}`;
  });
  return ["usage: deno task", c.name, c.args, ...flags].filter((s) => s !== "").join(" ");
}

/** The help: synopsis, summary, one line per flag with its default, examples and notes. */
export function helpText(c: Command<Flags>): string {
  const rows = Object.entries(c.flags).map(([name, f]) => {
    const left = `--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`;
    return [left, `${f.help}${flagNote(f)}`] as const;
  });
  rows.push(["-h, --help", "print this help and exit"]);
  const width = Math.min(28, Math.max(...rows.map(([l]) => l.length)) + 2);
  const line = ([left, right]: readonly [string, string]) =>
    left.length + 2 > width ? `  ${left}\n  ${" ".repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`;
  return [
    `deno task ${c.name}${c.args ? ` ${c.args}` : ""} [flags]`,
    "",
    ...wrap(c.summary),
    "",
    "Flags:",
    ...rows.map(line),
    "",
    c.examples.length > 1 ? "Examples:" : "Example:",
    ...c.examples.map((e) => `  ${e}`),
    ...(c.notes ?? []).flatMap((n) => ["", ...wrap(n)]),
    "",
  ].join("\n");
}

/** `text` broken into lines of at most `width` characters at spaces. */
function wrap(text: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** "(required)", "(default: 2)", "; repeatable" as the flag's table entry says. */
function flagNote(f: Flag): string {
  const notes: string[] = [];
  if (f.required) notes.push("required");
  const shown = f.defaultText ??
    (typeof f.default === "string" && f.default !== "" ? f.default : undefined);
  if (shown !== undefined) notes.push(`default: ${shown}`);
  if (f.multiple) notes.push("repeatable");
  return notes.length ? ` (${notes.join("; ")})` : "";
}

/** Whether the command line asks for help (`--help` or `-h` before a `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/**
 * Parses `args` with the command's table; `--help` prints the help and exits 0. A malformed command
 * line (unknown flag, missing value) is a UsageError naming the flag.
 */
export function parseCommand<F extends Flags>(c: Command<F>, args: readonly string[]) {
  if (wantsHelp(args)) {
    console.log(helpText(c));
    Deno.exit(0);
  }
  return parseWith(c, args);
}

/** `parseCommand` without the help check (tests, and commands that look at `--help` themselves). */
export function parseWith<F extends Flags>(c: Command<F>, args: readonly string[]) {
  try {
    return parseArgs({ args: [...args], allowPositionals: true, strict: true, options: c.flags });
  } catch (e) {
    if (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(flagError(c, e.message, args));
    }
    throw e;
  }
}

/** parseArgs's message, rewritten to name the flag, suggest one and point at --help. */
function flagError(c: Command<Flags>, message: string, args: readonly string[]): string {
  const help = `deno task ${c.name} --help lists the flags`;
  const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec(message);
  if (ambiguous) {
    // `--cfg -2`: parseArgs reads -2 as a flag; the value has to be attached
    const flag = ambiguous[1]!;
    const value = args[args.indexOf(flag) + 1] ?? "-...";
    return `${flag} ${value}: a value that starts with "-" is written ${flag}=${value}\n${
      usageLine(c)
    }\n(${help})`;
  }
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(message);
  if (unknown) {
    const [, dashes, name] = unknown;
    const guess = nearest(name!, Object.keys(c.flags));
    const hint = guess ? `; did you mean --${guess}?` : "";
    return `unknown flag ${dashes}${name} for deno task ${c.name}${hint}\n${usageLine(c)}\n(${help})`;
  }
  const first = message.split("\n")[0]!.replace(/ To specify an option argument.*$/, "");
  return `${first}\n${usageLine(c)}\n(${help})`;
}
