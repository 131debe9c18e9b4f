/**
 * The child process mod.ts starts for each peer measurement: reads one PeerRequest (JSON) from stdin,
 * loads only the library asked for, and prints `PEER_RESULT <json>` (see _protocol.ts).
 *
 *   echo '{"op":"matmul-gflops","peer":"jax-wasm","shape":{"m":512,"k":512,"n":512},"warmup":2,"runs":5}' |
 *     deno run -A bench/peers/run_peer.ts
 */
import { isRecord, type PeerAnswer, type PeerRequest, type PeerResult, RESULT_MARKER } from "./_protocol.ts";

async function answer(request: PeerRequest): Promise<PeerResult> {
  if (request.op === "t1-step") {
    const { jaxT1Timing } = await import("./t1_jax_timing.ts");
    return jaxT1Timing(request.device, request.warmup, request.steps);
  }
  const { shape } = request;
  if (request.peer === "tfjs-webgpu") {
    const tfjs = await import("./tfjs_matmul.ts");
    if (request.op === "matmul-gflops") return tfjs.tfjsMatmulTiming(shape, request);
    return {
      product: [...await tfjs.tfjsMatmul(Float32Array.from(request.a), Float32Array.from(request.b), shape)],
    };
  }
  const jax = await import("./jax_matmul.ts");
  const device = request.peer === "jax-webgpu" ? "webgpu" : "wasm";
  if (request.op === "matmul-gflops") return jax.jaxMatmulTiming(shape, device, request);
  const [a, b] = [Float32Array.from(request.a), Float32Array.from(request.b)];
  return { product: [...await jax.jaxMatmul(a, b, shape, device)] };
}

if (import.meta.main) {
  let reply: PeerAnswer;
  try {
    const request: unknown = JSON.parse(await new Response(Deno.stdin.readable).text());
    if (!isRecord(request) || typeof request.op !== "string") throw new Error("stdin is not a peer request");
    reply = { ok: true, result: { ...await answer(request as unknown as PeerRequest) } };
  } catch (e) {
    reply = { ok: false, error: e instanceof Error ? e.stack ?? `${e.name}: ${e.message}` : String(e) };
  }
  console.log(RESULT_MARKER + JSON.stringify(reply));
  // jax-js and tfjs keep devices and pools alive; leave without waiting for them.
  Deno.exit(0);
}
