/**
 * Runs one peer request in a child Deno process (run_peer.ts) with the WebGPU environment of
 * runtime/gpu_env.ts. A child per measurement keeps each library's device, buffer pools, JIT state
 * and global registries out of the caller's process (and out of the next peer's timings), and lets a
 * hung or crashed peer end in an error instead of taking the bench down.
 */
import { gpuEnv } from "../../runtime/gpu_env.ts";
import { parseAnswer, type PeerRequest } from "./_protocol.ts";

const CHILD = new URL("./run_peer.ts", import.meta.url);
const STDERR_TAIL = 4000;

export class PeerError extends Error {
  override name = "PeerError";
}

/** The child's result fields; throws PeerError with the child's own message or its stderr tail. */
export async function runPeer(request: PeerRequest, timeoutMs: number): Promise<Record<string, unknown>> {
  const what = request.op === "t1-step"
    ? `T1 step on jax-${request.device}`
    : `${request.op} on ${request.peer}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD.pathname],
    env: gpuEnv(),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  try {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(request)));
    await writer.close();
    const output = await child.output();
    const [stdout, stderr] = [output.stdout, output.stderr].map((b) => new TextDecoder().decode(b));
    const tail = stderr!.slice(-STDERR_TAIL);
    if (output.signal === "SIGKILL") {
      throw new PeerError(`${what}: killed after the ${timeoutMs} ms limit\n${tail}`);
    }
    let answer;
    try {
      answer = parseAnswer(stdout!);
    } catch (e) {
      throw new PeerError(`${what}: child exited with code ${output.code}, ${(e as Error).message}\n${tail}`);
    }
    if (!answer.ok) throw new PeerError(`${what} failed in the child: ${answer.error}\nIts stderr:\n${tail}`);
    return answer.result;
  } finally {
    clearTimeout(timer);
  }
}
