/**
 * An HTTP endpoint over a generated module (`deno task compile`): a prompt in, a PNG out.
 *
 *   deno run --allow-read=DIR --allow-net=127.0.0.1 --allow-env=PORT,DENO_WEBGPU_BACKEND,XDG_RUNTIME_DIR,TMPDIR \
 *     --allow-sys=uid examples/serve.ts --module DIR --weights DIR/model.safetensors [--port 8000] [--host 127.0.0.1]
 *   curl "http://127.0.0.1:8000/generate?prompt=a+handwritten+digit+3&steps=50&seed=1&scale=8" > digit.png
 *
 * The port comes from --port, else $PORT, else 8000 (0 picks a free one); the address is printed as
 * "listening on http://HOST:PORT/" once the model is loaded. Query parameters besides the prompt:
 * steps, guidance, seed, sampler and scale (pixels per model pixel, default 8). Requests run one at
 * a time on the GPU; a bad parameter (unknown, repeated, out of range, a prompt longer than the
 * caption slot) is a 400 with the reason.
 *
 * Permissions, the narrowest that work (not -A): read the module folder and the weights (add their
 * folder if elsewhere, or the host with --allow-net for weights by URL); listen on the host only;
 * the environment variables of the port and of WebGPU (runtime/gpu_env.ts: the backend, and a
 * private XDG_RUNTIME_DIR, which needs the uid to check; without it Mesa prints one warning and
 * works). WebGPU itself needs no flag. Nothing is written.
 */
import { parseArgs } from "node:util";
import type { GeneratedModule, GenerateRequest, Model, SamplerName } from "../runtime/standalone/api.ts";

const USAGE = "usage: deno run --allow-read=DIR --allow-net=127.0.0.1 --allow-env=PORT,DENO_WEBGPU_BACKEND," +
  "XDG_RUNTIME_DIR,TMPDIR --allow-sys=uid examples/serve.ts --module DIR --weights FILE [--port N] [--host H]";
const SAMPLERS: readonly SamplerName[] = ["ddpm", "ddim", "euler", "heun"];

class BadRequest extends Error {
  override name = "BadRequest";
}

/** Errors that mean the request asked for something the model cannot do (steps past T, ...). */
const CLIENT_ERRORS = new Set(["BadRequest", "SamplingError", "RangeError"]);

/** The query parameters GET /generate reads; any other (a typo such as `stepz`) is refused. */
const PARAMETERS = ["prompt", "steps", "guidance", "seed", "sampler", "scale"] as const;

/** Reads the query of GET /generate into a request and a PNG scale. */
export function parseQuery(params: URLSearchParams): { request: GenerateRequest; scale: number } {
  for (const name of new Set(params.keys())) {
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      throw new BadRequest(`unknown parameter "${name}"; /generate takes ${PARAMETERS.join(", ")}`);
    }
    if (params.getAll(name).length > 1) {
      throw new BadRequest(`${name} is given ${params.getAll(name).length} times`);
    }
  }
  const prompt = params.get("prompt");
  if (prompt === null) throw new BadRequest("the prompt parameter is required: /generate?prompt=...");
  const number = (name: string, integer: boolean, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const raw = params.get(name);
    if (raw === null) return undefined;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new BadRequest(
        `${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got "${raw}"`,
      );
    }
    return n;
  };
  const sampler = params.get("sampler");
  if (sampler !== null && !SAMPLERS.includes(sampler as SamplerName)) {
    throw new BadRequest(`sampler must be one of ${SAMPLERS.join(", ")}, got "${sampler}"`);
  }
  const optional = {
    steps: number("steps", true, 1, 1000),
    guidance: number("guidance", false, 0, 100),
    seed: number("seed", true, 0, 2 ** 32 - 1),
    sampler: sampler === null ? undefined : sampler as SamplerName,
  };
  const request: GenerateRequest = {
    prompt,
    maxTokens: 0, // only the prompted image
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
  return { request, scale: number("scale", true, 1, 64) ?? 8 };
}

export function handler(mod: GeneratedModule, model: Model): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    if (req.method !== "GET") return new Response("only GET\n", { status: 405 });
    if (url.pathname === "/") {
      return new Response(
        `model ${model.info.name}: GET /generate?prompt=...&steps=&seed=&guidance=&scale=\n`,
      );
    }
    if (url.pathname !== "/generate") return new Response("not found\n", { status: 404 });
    try {
      const { request, scale } = parseQuery(url.searchParams);
      const { images } = await model.generate(request);
      const image = images[0];
      if (!image) return new Response("the model drew no image\n", { status: 500 });
      const png = mod.toPng(image, { scale });
      return new Response(png.slice().buffer, { headers: { "content-type": "image/png" } });
    } catch (e) {
      const status = e instanceof Error && CLIENT_ERRORS.has(e.name) ? 400 : 500;
      return new Response(`${(e as Error).message}\n`, { status });
    }
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      module: { type: "string" },
      weights: { type: "string" },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
    },
  });
  if (!values.module || !values.weights) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const port = Number(values.port ?? Deno.env.get("PORT") ?? 8000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`port must be an integer in 0..65535, got "${values.port ?? Deno.env.get("PORT")}"`);
    Deno.exit(2);
  }
  const url = new URL(`${values.module.replace(/\/$/, "")}/mod.ts`, `file://${Deno.cwd()}/`);
  const mod = (await import(url.href)) as GeneratedModule;
  const model = await mod.load(values.weights);
  Deno.serve({
    port,
    hostname: values.host,
    onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}/`),
  }, handler(mod, model));
}

if (import.meta.main) await main();
