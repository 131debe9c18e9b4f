/**
 * File access shared by the sources of a user's own data (images, captions, text): paths given as
 * strings or file URLs, folder walks in a fixed order, and errors that start with the file.
 */

/** A data source that cannot be made as asked: an option, or a config that does not fit the data. */
export class DataError extends Error {
  override name = "DataError";
}

/** A file of the user's data set that cannot be used: the message starts with the file (and line). */
export class DataFileError extends DataError {
  override name = "DataFileError";
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

/** A path given as a string or a file URL (`new URL("./pictures/", import.meta.url)`). */
export function filePath(location: string | URL): string {
  if (typeof location === "string") return location;
  if (location.protocol !== "file:") throw new Error(`expected a file: URL, got ${location.href}`);
  return decodeURIComponent(location.pathname);
}

/** Every file under `dir`, sorted by path (hidden files and folders left out). */
export function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith(".")) continue;
    const path = `${dir.replace(/\/+$/, "")}/${e.name}`;
    if (e.isDirectory) out.push(...walkFiles(path));
    else if (e.isFile) out.push(path);
  }
  return out.sort();
}

/** `path`'s file info; a missing or unreadable path is a DataFileError saying what it was for. */
export function statOrFail(path: string, what: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch (e) {
    throw new DataFileError(path, `${what} cannot be read (${reason(e)})`);
  }
}

/** The file's text; a missing or unreadable file is a DataFileError. */
export function readText(file: string): string {
  try {
    return Deno.readTextFileSync(file);
  } catch (e) {
    throw new DataFileError(file, `cannot be read (${reason(e)})`);
  }
}

export function reason(e: unknown): string {
  return e instanceof Deno.errors.NotFound ? "no such file or folder" : (e as Error).message;
}

/** The folder a file is in ("." for a bare name), to resolve paths written inside it. */
export function folderOf(file: string): string {
  return file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ".";
}

/**
 * The records of a JSONL file, one per non-blank line, each with `at` = "file:line" for messages;
 * a line that is not JSON is refused there. Shared by the image and text JSONL sources.
 */
export function jsonlRecords(file: string): { record: unknown; line: string; at: string }[] {
  const records: { record: unknown; line: string; at: string }[] = [];
  readText(file).split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const at = `${file}:${i + 1}`;
    try {
      records.push({ record: JSON.parse(line), line, at });
    } catch (e) {
      throw new DataFileError(at, `not JSON (${(e as Error).message})`);
    }
  });
  return records;
}
