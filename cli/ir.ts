/**
 * `deno task ir <spec.ts> [--backward] [--entry NAME] [--dim name=N]... [--set key=value]...`
 * Prints the traced IR of a spec for a person: the forward graph, and with `--backward` the graph of
 * the loss gradients with respect to every parameter.
 */
import { parseArgs } from "node:util";
import { grad, printGraph } from "../compiler/mod.ts";
import { trace } from "../spec/mod.ts";
import { loadSpec, parseOverrides, runCli, UsageError } from "./load_spec.ts";

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        backward: { type: "boolean", default: false },
        entry: { type: "string", default: "loss" },
        dim: { type: "string", multiple: true, default: [] },
        set: { type: "string", multiple: true, default: [] },
      },
    });
    const path = positionals[0];
    if (!path) {
      throw new UsageError("usage: deno task ir <spec.ts> [--backward] [--entry NAME] [--dim name=N]");
    }
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
