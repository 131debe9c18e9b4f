/**
 * The run directory DIR, besides the checkpoint folders that runtime/checkpoint.ts owns:
 *   log.jsonl      one JSON object per logged step
 *   loss.svg       the loss curve (and each metric), redrawn at every checkpoint
 *   training.json  the training settings of the latest checkpoint (lr schedule, optimizer, intervals)
 * Nothing here writes before the caller has checked its input: a refused run leaves DIR as it was.
 */
import { lossCurveSvg, type Series } from "../plots.ts";
import { parseSavedSettings, TrainError, type TrainSettings } from "./settings.ts";

export const RUN_FILES = { log: "log.jsonl", lossCurve: "loss.svg", settings: "training.json" } as const;

/** What marks DIR as holding a run: the checkpoint folders (and their leftovers) and the log. */
const RUN_MARKERS = ["checkpoint", "checkpoint.new", "checkpoint.old", "model.safetensors", RUN_FILES.log];

/** One logged step as log.jsonl and `--json` write it: flat, metrics next to the loss. */
export type LogLine = Readonly<Record<string, number | null>> & { readonly step: number };

/** Refuses to start a new run where one already is, so its checkpoint cannot be overwritten. */
export async function refuseExistingRun(dir: string): Promise<void> {
  const info = await Deno.stat(dir).catch((e) => {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  });
  if (info && !info.isDirectory) {
    throw new TrainError(`--out ${dir} is a file, not a directory; name a new or existing run directory`);
  }
  const found: string[] = [];
  for (const name of RUN_MARKERS) if (await exists(`${dir}/${name}`)) found.push(name);
  if (found.length === 0) return;
  throw new TrainError(
    `${dir} already holds a run (${found.join(", ")}); pass --resume to continue it, ` +
      `or --out <another dir> to start a new one`,
  );
}

/**
 * Whether DIR holds a run stopped before its first checkpoint (killed during its first steps or its
 * first save): a log, but no checkpoint folder. `--resume` then starts it over from step 0, which
 * loses nothing; an empty or missing DIR is not this (a mistyped --out should not start a run).
 */
export async function stoppedBeforeFirstCheckpoint(dir: string): Promise<boolean> {
  if (!(await exists(`${dir}/${RUN_FILES.log}`))) return false;
  for (const name of RUN_MARKERS) if (name !== RUN_FILES.log && await exists(`${dir}/${name}`)) return false;
  return true;
}

/** Settings saved with the checkpoint, or undefined for a run directory without them. */
export async function readSavedSettings(dir: string): Promise<Partial<TrainSettings> | undefined> {
  const path = `${dir}/${RUN_FILES.settings}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    return parseSavedSettings(JSON.parse(text), path);
  } catch (e) {
    if (e instanceof SyntaxError) throw new TrainError(`${path} is not valid JSON (${e.message})`);
    throw e;
  }
}

export async function writeSettings(dir: string, settings: TrainSettings): Promise<void> {
  await writeFileAtomic(`${dir}/${RUN_FILES.settings}`, JSON.stringify(settings, null, 2) + "\n");
}

/**
 * The logged steps up to `lastStep`. Lines past it (logged after the checkpoint a resume starts
 * from) and a line cut short by a crash are dropped; the caller rewrites the log with what is kept.
 */
export async function readLog(dir: string, lastStep: number): Promise<LogLine[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${RUN_FILES.log}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const lines: LogLine[] = [];
  for (const raw of text.split("\n")) {
    let line: unknown;
    try {
      line = JSON.parse(raw);
    } catch {
      continue;
    }
    if (isLogLine(line) && line.step <= lastStep) lines.push(line);
  }
  return lines;
}

export async function rewriteLog(dir: string, lines: readonly LogLine[]): Promise<void> {
  await writeFileAtomic(`${dir}/${RUN_FILES.log}`, lines.map((l) => JSON.stringify(l) + "\n").join(""));
}

export async function appendLog(dir: string, line: LogLine): Promise<void> {
  await Deno.writeTextFile(`${dir}/${RUN_FILES.log}`, JSON.stringify(line) + "\n", { append: true });
}

/** Keys of a log line that are not a loss or metric, so they get no curve. */
const NOT_PLOTTED = new Set(["step", "lr", "grad_norm", "ms", "tok_s", "elapsed_s"]);

/** Redraws loss.svg: the loss and every metric against the step, on a log axis. */
export async function writeLossCurve(dir: string, title: string, lines: readonly LogLine[]): Promise<void> {
  const names = [...new Set(lines.flatMap((l) => Object.keys(l).filter((k) => !NOT_PLOTTED.has(k))))];
  const series: Series[] = names.map((name) => ({
    name,
    points: lines.flatMap((l) => {
      const v = l[name];
      return typeof v === "number" ? [[l.step, v] as const] : [];
    }),
  }));
  await writeFileAtomic(`${dir}/${RUN_FILES.lossCurve}`, lossCurveSvg(series, { title, logY: true }));
}

/** Writes next to `path` and renames over it, so readers see the old file or the new one. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, path);
}

function isLogLine(x: unknown): x is LogLine {
  return typeof x === "object" && x !== null && typeof (x as { step?: unknown }).step === "number";
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    // NotADirectory: a part of the path is a file (an --out that names one), so nothing is there.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}
