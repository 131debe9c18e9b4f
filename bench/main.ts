/**
 * `deno task bench [--json] [--only a,b] [--quick]`: every benchmark suite, each in its own process
 * (one WebGPU device per suite, no interference), side by side on the present adapter. A suite is
 * a script in bench/suites/ that prints its result as one JSON line prefixed `RESULT `; this runner
 * collects them, prints tables (or one JSON object with --json), and reports ratios measured in the
 * same run. Speed claims come from here, never from timed tests.
 */
import { parseArgs } from "node:util";

export interface SuiteResult {
  suite: string;
  /** Rows of the table: column -> value. */
  rows: Record<string, number | string>[];
  /** Ratios the issue asks for, computed inside the suite from its own measurements. */
  ratios?: Record<string, number>;
  notes?: string[];
}

const SUITES = ["matmul", "t1", "demo", "pipeline", "attention", "generation", "module", "conv"] as const;

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "boolean", default: false },
      only: { type: "string" },
      quick: { type: "boolean", default: false },
    },
  });
  const wanted = values.only ? values.only.split(",") : [...SUITES];
  const results: SuiteResult[] = [];
  for (const suite of wanted) {
    const path = new URL(`./suites/${suite}.ts`, import.meta.url).pathname;
    try {
      await Deno.stat(path);
    } catch {
      results.push({ suite, rows: [], notes: [`no suite file bench/suites/${suite}.ts`] });
      continue;
    }
    if (!values.json) console.error(`bench: running ${suite} ...`);
    const args = ["run", "-A", path, ...(values.quick ? ["--quick"] : [])];
    const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
      .output();
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    if (!out.success || !line) {
      results.push({ suite, rows: [], notes: [`suite failed (exit ${out.code})`, text.slice(-2000)] });
      continue;
    }
    results.push(JSON.parse(line.slice(7)) as SuiteResult);
  }
  if (values.json) console.log(JSON.stringify({ date: new Date().toISOString(), suites: results }));
  else for (const r of results) console.log(formatSuite(r));
}

export function formatSuite(r: SuiteResult): string {
  const lines = [`\n== ${r.suite} ==`];
  if (r.rows.length) {
    const cols = [...new Set(r.rows.flatMap((row) => Object.keys(row)))];
    const cell = (v: number | string | undefined) =>
      v === undefined
        ? ""
        : typeof v === "number"
        ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3))
        : v;
    const widths = cols.map((c) => Math.max(c.length, ...r.rows.map((row) => String(cell(row[c])).length)));
    lines.push(cols.map((c, i) => c.padEnd(widths[i]!)).join("  "));
    for (const row of r.rows) {
      lines.push(cols.map((c, i) => String(cell(row[c])).padEnd(widths[i]!)).join("  "));
    }
  }
  for (const [k, v] of Object.entries(r.ratios ?? {})) lines.push(`ratio ${k}: ${v.toFixed(2)}x`);
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  return lines.join("\n");
}

/** Called by suites: prints the machine-readable line the runner looks for. */
export function report(result: SuiteResult): void {
  console.log(`RESULT ${JSON.stringify(result)}`);
}

/** Median of `runs` timings of `f` after `warmup` calls, in ms. */
export async function medianMs(f: () => Promise<unknown>, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await f();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}
