/**
 * An error in a user's spec, found while tracing. It names the op, what was seen and what was
 * expected, and the file:line in the user's spec that built the offending node.
 */
export class SpecError extends Error {
  constructor(
    readonly op: string,
    readonly detail: string,
    readonly site: string | undefined,
  ) {
    super(`${op}: ${detail}${site ? `\n  at ${site}` : ""}`);
    this.name = "SpecError";
  }
}

/** A broken compiler invariant (found by the IR verifier), not a user's mistake. */
export class IRError extends Error {
  override name = "IRError";
}

/**
 * The file:line:col of the first stack frame outside the project's own library folders: that is
 * the line of the user's spec that called into the DSL. Examples and tests count as user code.
 */
export function userSite(): string | undefined {
  const stack = new Error().stack?.split("\n").slice(1) ?? [];
  for (const line of stack) {
    const m = /\(?((?:file:\/\/|\/)[^()\s]+?):(\d+):(\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const file = m[1]!;
    // Reaching the tracer means the node was built by library code (a model builder) on behalf of
    // the spec; the caller of trace() is not the spec, so use the model's declaration line instead.
    if (TRACER.test(line)) return traceFallback;
    if (LIBRARY.test(file)) continue;
    return `${shortPath(file)}:${m[2]}:${m[3]}`;
  }
  return traceFallback;
}

let traceFallback: string | undefined;

/** While a model is traced, nodes that no spec line built are attributed to the model's own line. */
export function withTraceSite<T>(site: string | undefined, f: () => T): T {
  const saved = traceFallback;
  traceFallback = site;
  try {
    return f();
  } finally {
    traceFallback = saved;
  }
}

const ROOT = new URL("../../", import.meta.url).href;
const TRACER = /\bat (trace|withTrace)\b.*\/spec\/(model|context)\.ts:/;
const LIBRARY = new RegExp(
  "^(file://)?" + ROOT.replace(/^file:\/\//, "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&") +
    "(spec|compiler|kernels|runtime)/",
);

function shortPath(file: string): string {
  const path = file.replace(/^file:\/\//, "");
  const cwd = Deno.cwd() + "/";
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

/** Thrown by shape rules; `node()` turns it into a SpecError carrying the user's spec line. */
export class ShapeMismatch extends Error {}
