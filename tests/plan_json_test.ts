/**
 * A plan is plain data: saved as JSON and reloaded, it runs on the executor exactly as the
 * compiled object does (the runtime makes no compilation decisions).
 */
import assert from "node:assert/strict";
import tiny from "../examples/tiny.ts";
import { compile, type Plan } from "../compiler/mod.ts";
import { Executor } from "../runtime/mod.ts";

Deno.test("a plan round-trips through JSON and runs the same", async () => {
  const plan = compile(tiny, {});
  const text = JSON.stringify(plan);
  const reloaded = JSON.parse(text) as Plan;
  assert.deepEqual(reloaded, plan);
  const inputs = { x: [0.5, -1, 2, 0.25, 3, -2], y: [1, -1] };
  const run = async (p: Plan) => {
    const ex = await Executor.create(p, { seed: 11 });
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push((await ex.run("trainStep", inputs, { lr: 0.05 })).loss![0]!);
    const forward = (await ex.run("forward", inputs)).loss![0]!;
    ex.destroy();
    return { losses, forward };
  };
  const [a, b] = [await run(plan), await run(reloaded)];
  assert.deepEqual(b, a);
  assert.ok(a.losses[2]! < a.losses[0]!, `loss should fall: ${a.losses}`);
});
