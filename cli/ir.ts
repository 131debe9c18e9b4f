/**
 * `deno task ir <spec.ts> [--backward] [--entry NAME] [--dim name=N]... [--set key=value]...`
 * Prints the traced IR of a spec for a person: the forward graph, and with `--backward` the graph of
 * the loss gradients with respect to every parameter.
 */
import { grad, printGraph } from "../compiler/mod.ts";
import { trace } from "../spec/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, SPEC_FLAGS, usageLine } from "./usage.ts";

export const IR = command({
  name: "ir",
  args: "<spec.ts>",
  summary: "Prints the traced IR of a spec for a person: the forward graph of an entry, and with " +
    "--backward the graph of the loss gradients with respect to every parameter.",
  flags: {
    backward: { type: "boolean", default: false, help: "also print d loss / d parameter" },
    entry: { type: "string", value: "NAME", default: "loss", help: "the entry to trace" },
    ...SPEC_FLAGS,
  },
  examples: ["deno task ir examples/tiny.ts --backward"],
});

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseCommand(IR, Deno.args);
    const path = positionals[0];
    if (!path) throw new UsageError(usageLine(IR));
    const model = await loadSpec(path);
    const dims = parseOverrides(values.dim) as Record<string, number>;
    const traced = trace(model, { config: parseOverrides(values.set), dims, entry: values.entry });
    console.log(`# ${traced.name}: entry ${traced.entry}, dims ${JSON.stringify(traced.dims)}`);
    console.log(printGraph(traced.outputs));
    if (values.backward) {
      if (!traced.outputs.loss) throw new UsageError(`entry ${values.entry} has no loss to differentiate`);
      const grads = grad(traced.outputs.loss, traced.params.map((p) => p.node));
      console.log(`\n# backward: d loss / d parameter`);
      console.log(printGraph(Object.fromEntries(traced.params.map((p, i) => [`grad ${p.path}`, grads[i]!]))));
    }
  });
}
