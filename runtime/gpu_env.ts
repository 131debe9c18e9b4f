/**
 * The environment WebGPU wants on Linux, and a launcher that runs a command with it.
 *
 * Deno picks its WebGPU backend from `DENO_WEBGPU_BACKEND`. Unset, it tries every backend it was
 * built with (Vulkan, then OpenGL through EGL, which loads libEGL for nothing); we want Vulkan: Mesa
 * lavapipe on a machine without a GPU, the vendor's driver on one with a GPU. Mesa's window-system
 * code also prints "XDG_RUNTIME_DIR is invalid or not set" once per instance when that variable is
 * missing or relative, which is noise in test output.
 *
 * Deno 2.9 reads both variables on each `navigator.gpu.requestAdapter()` call, not once at startup
 * (checked: setting `Deno.env` in-process before the call silences the warning and switches the
 * backend), so `openDevice()` applies `gpuEnv()` to its own process first. Code that calls
 * `navigator.gpu` directly gets nothing of that; run it through the launcher instead:
 *
 *   deno run -A runtime/gpu_env.ts deno run -A some_script.ts
 *
 * Nothing is set on macOS or Windows, where the defaults (Metal, D3D12) are right.
 */

/** The variables a process that uses WebGPU should have; values already valid are kept. */
export function gpuEnv(): Record<string, string> {
  if (Deno.build.os !== "linux") return {};
  const backend = Deno.env.get("DENO_WEBGPU_BACKEND");
  const runtimeDir = Deno.env.get("XDG_RUNTIME_DIR");
  return {
    // An empty value selects no backend at all: Deno then finds no adapter.
    DENO_WEBGPU_BACKEND: backend ? backend : "vulkan",
    XDG_RUNTIME_DIR: runtimeDir !== undefined && isPrivateDir(runtimeDir) ? runtimeDir : privateRuntimeDir(),
  };
}

/** Sets in this process the variables of `gpuEnv()` that are missing or different; returns those set. */
export function applyGpuEnv(): Record<string, string> {
  const changed: Record<string, string> = {};
  for (const [name, value] of Object.entries(gpuEnv())) {
    if (Deno.env.get(name) === value) continue;
    Deno.env.set(name, value);
    changed[name] = value;
  }
  return changed;
}

/** What the XDG base-directory spec asks of XDG_RUNTIME_DIR: absolute, ours, mode 0700. */
function isPrivateDir(path: string): boolean {
  if (!path.startsWith("/")) return false;
  try {
    const info = Deno.statSync(path);
    return info.isDirectory && info.uid === Deno.uid() && ((info.mode ?? 0) & 0o077) === 0;
  } catch {
    return false;
  }
}

/** `$TMPDIR/xdg-<uid>`, made 0700; a fresh temp dir if that name is taken by someone else. */
function privateRuntimeDir(): string {
  const tmp = (Deno.env.get("TMPDIR") || "/tmp").replace(/\/+$/, "") || "/tmp";
  const path = `${tmp}/xdg-${Deno.uid() ?? "user"}`;
  try {
    Deno.mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  if (isPrivateDir(path)) return path;
  try {
    // Ours but too open (an older run, a umask): tighten it.
    if (Deno.statSync(path).uid === Deno.uid()) {
      Deno.chmodSync(path, 0o700);
      if (isPrivateDir(path)) return path;
    }
  } catch { /* fall through to a temp dir of our own */ }
  return Deno.makeTempDirSync({ prefix: "xdg-" }); // mkdtemp: 0700, ours
}

/** Runs `Deno.args` as a command with `gpuEnv()` added, and exits with its status. */
async function launch(): Promise<never> {
  const [command, ...args] = Deno.args;
  if (!command) {
    for (const [name, value] of Object.entries(gpuEnv())) console.log(`${name}=${value}`);
    Deno.exit(0);
  }
  const child = new Deno.Command(command, { args, env: gpuEnv(), stdin: "inherit" }).spawn();
  Deno.exit((await child.status).code); // 128 + n when killed by signal n
}

if (import.meta.main) await launch();
