/** Command-line entry points (each file runs as a deno task) and their shared helpers. */
export { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
export { explainText, type PlanSummary, summarize } from "./explain.ts";
