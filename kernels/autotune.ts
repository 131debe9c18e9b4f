/**
 * Picks matmul variants by measurement on the present adapter and remembers the winners in a JSON
 * file, so the compiler can read a choice without a device:
 *
 *   { "version": 1, "matmul": { "<adapterKey>": { "b1_m1024_n1024_k1024": { "variant": {...}, "gflops": 12.1 } } } }
 *
 * The file is written atomically (temp file + rename); one that cannot be read is ignored with a warning.
 */
import { matmulKernel, type MatmulShape, type MatmulVariant, variantName } from "./matmul.ts";
import { plainMatmulIO, type SizedMatmulIO } from "./matmul_io.ts";
import { createBuffers, prepareKernel, secondsPerRun } from "./matmul_runner.ts";

export interface TuneOptions {
  /** Cache file; default `defaultCachePath()`. */
  readonly cachePath?: string;
  /** Measure even when the cache already has a choice for this adapter and shape. */
  readonly retune?: boolean;
  /** Timed batches per candidate; the median counts. */
  readonly samples?: number;
  /** Called with each candidate's speed, e.g. to print a table. */
  readonly onMeasured?: (variant: MatmulVariant, gflops: number) => void;
}

interface CacheEntry {
  readonly variant: MatmulVariant;
  readonly gflops: number;
}

interface CacheFile {
  readonly version: 1;
  readonly matmul: Record<string, Record<string, CacheEntry>>;
}

/** `$XDG_CACHE_HOME/transfusion-wgsl/tuning.json`, else `~/.cache/transfusion-wgsl/tuning.json`. */
export function defaultCachePath(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? "."}/.cache`;
  return `${base}/transfusion-wgsl/tuning.json`;
}

export function shapeKey(shape: MatmulShape): string {
  return `b${shape.batch}_m${shape.m}_n${shape.n}_k${shape.k}`;
}

/** The cached choice for this adapter and shape, if any. Reads the file only: no device needed. */
export function cachedVariant(
  adapterKey: string,
  shape: MatmulShape,
  cachePath = defaultCachePath(),
): MatmulVariant | undefined {
  return readCache(cachePath).matmul[adapterKey]?.[shapeKey(shape)]?.variant;
}

/**
 * Measures every candidate on `device` (median of `samples` timed batches after warm-up) and caches
 * the fastest for (adapterKey, shape). Returns the cached choice without measuring unless `retune`.
 * `io` defaults to plain buffers of the right sizes (vec4 arrays for the vector kind): speed depends
 * on the shape, not on the operands.
 */
export async function tuneMatmul(
  device: GPUDevice,
  adapterKey: string,
  shape: MatmulShape,
  io: SizedMatmulIO | undefined,
  candidates: readonly MatmulVariant[],
  options: TuneOptions = {},
): Promise<MatmulVariant> {
  const path = options.cachePath ?? defaultCachePath();
  const cached = options.retune ? undefined : cachedVariant(adapterKey, shape, path);
  if (cached) return cached;
  if (candidates.length === 0) throw new Error(`tuneMatmul ${shapeKey(shape)}: no candidate variants given`);

  // Plain buffers by default, declared as vec4 arrays for the vector kind (its loads need them).
  const ioFor = (v: MatmulVariant) => io ?? plainMatmulIO(shape, { vector: v.kind === "vector" });
  const buffers = createBuffers(device, (io ?? plainMatmulIO(shape, { vector: true })).bufferBytes);
  let best: CacheEntry | undefined;
  try {
    for (const variant of candidates) {
      const kernel = matmulKernel(`tune_${shapeKey(shape)}`, shape, ioFor(variant), variant);
      const prepared = await prepareKernel(device, kernel, buffers).catch((e: Error) => {
        console.warn(`matmul tuning: skipping ${variantName(variant)}, which fails to build: ${e.message}`);
      });
      if (!prepared) continue;
      // A candidate far slower than the best so far is not worth more samples.
      const giveUpAfter = best ? 4 * kernel.flops / (best.gflops * 1e9) : Infinity;
      const seconds = await secondsPerRun(device, prepared, options.samples ?? 3, giveUpAfter);
      const gflops = kernel.flops / seconds / 1e9;
      options.onMeasured?.(variant, gflops);
      if (!best || gflops > best.gflops) best = { variant, gflops };
    }
  } finally {
    for (const buffer of buffers.values()) buffer.destroy();
  }
  if (!best) throw new Error(`tuneMatmul ${shapeKey(shape)}: no candidate variant builds`);
  const winner = best;
  const cache = readCache(path);
  writeCache(path, {
    version: 1,
    matmul: { ...cache.matmul, [adapterKey]: { ...cache.matmul[adapterKey], [shapeKey(shape)]: winner } },
  });
  return winner.variant;
}

function readCache(path: string): CacheFile {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) warn(path, `cannot be read (${e}); ignoring it`);
    return emptyCache();
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (isCacheFile(parsed)) return parsed;
    warn(
      path,
      `is not a version 1 tuning cache of valid variants; ignoring it (it is rewritten after tuning)`,
    );
  } catch (e) {
    warn(path, `is not valid JSON (${e instanceof Error ? e.message : e}); ignoring it`);
  }
  return emptyCache();
}

/** Writes to a temp file beside `path` and renames it over, so readers never see half a file. */
function writeCache(path: string, cache: CacheFile): void {
  const dir = path.slice(0, Math.max(path.lastIndexOf("/"), 0));
  const temp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(temp, JSON.stringify(cache, null, 1) + "\n");
    Deno.renameSync(temp, path);
  } catch (e) {
    try {
      Deno.removeSync(temp);
    } catch { /* the temp file was never created */ }
    warn(path, `cannot be written (${e}); the tuning result is used but not kept`);
  }
}

function emptyCache(): CacheFile {
  return { version: 1, matmul: {} };
}

function warn(path: string, message: string): void {
  console.warn(`matmul tuning cache ${path} ${message}`);
}

function isCacheFile(x: unknown): x is CacheFile {
  if (!isRecord(x) || x.version !== 1 || !isRecord(x.matmul)) return false;
  return Object.values(x.matmul).every((shapes) =>
    isRecord(shapes) &&
    Object.values(shapes).every((e) => isRecord(e) && typeof e.gflops === "number" && isVariant(e.variant))
  );
}

const VARIANT_FIELDS = {
  register: ["tm", "tn", "wgX", "wgY"],
  vector: ["tm", "tn", "wgX", "wgY"],
  shared: ["tile", "tm", "tn", "tk"],
} as const;

function isVariant(x: unknown): x is MatmulVariant {
  if (!isRecord(x) || (x.kind !== "register" && x.kind !== "vector" && x.kind !== "shared")) return false;
  return VARIANT_FIELDS[x.kind].every((f) => Number.isInteger(x[f]) && (x[f] as number) > 0);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
