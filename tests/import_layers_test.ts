import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// runtime/ is a library under cli/: the CLI may import the runtime, never the reverse. This walks the
// import graph reachable from every runtime/ file (relative specifiers, static and dynamic) and fails
// on any file under cli/ it reaches, naming the chain that led there.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// Static imports start a line (so examples inside doc comments, which start with " * ", are skipped).
const IMPORT =
  /^(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|^import\s*["']([^"']+)["']|[^\w.]import\s*\(\s*["']([^"']+)["']\s*\)/gm;

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The relative imports of one file, resolved to absolute paths. */
export function relativeImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith(".")) out.push(resolve(dirname(file), spec));
  }
  return out;
}

Deno.test("the import scanner sees static, re-export and dynamic imports", () => {
  const text =
    `import { a } from "../../cli/x.ts";\nexport { b } from "./y.ts";\nconst m = await import("../z.ts");\nimport "./side.ts";\n * import { c } from "./doc_example.ts";`;
  const found = relativeImports("/r/runtime/generate/f.ts", text).map((p) => relative("/r", p)).sort();
  assert.deepEqual(found, [
    "cli/x.ts",
    "runtime/generate/side.ts",
    "runtime/generate/y.ts",
    "runtime/z.ts",
  ]);
});

Deno.test("runtime/ never reaches cli/ through its imports", async () => {
  const via = new Map<string, string>(); // file -> the file that imported it
  const todo: string[] = [];
  for await (const f of tsFiles(join(ROOT, "runtime"))) {
    via.set(f, "");
    todo.push(f);
  }
  assert.ok(todo.length > 20, `expected many runtime files, found ${todo.length}`);
  const offenders: string[] = [];
  while (todo.length) {
    const file = todo.pop()!;
    const text = await Deno.readTextFile(file);
    for (const dep of relativeImports(file, text)) {
      if (via.has(dep)) continue;
      via.set(dep, file);
      if (relative(ROOT, dep).startsWith("cli/")) {
        const chain = [dep];
        for (let f = file; f; f = via.get(f)!) chain.push(f);
        offenders.push(chain.reverse().map((p) => relative(ROOT, p)).join(" -> "));
      } else if (await exists(dep)) todo.push(dep);
      // a missing target is import text inside a template (runtime/standalone writes generated
      // modules that import ./runtime.js); a real missing import fails `deno check` instead.
    }
  }
  assert.deepEqual(offenders, [], `runtime/ imports cli/:\n${offenders.join("\n")}`);
});
