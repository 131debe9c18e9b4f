/**
 * Errors about files a run reads back: checkpoints and images. Each message starts with the file it
 * is about, then the tensor or chunk, then what was wrong and what was expected.
 */

/** A checkpoint (run directory, safetensors file or run.json) that cannot be used. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** A PNG that cannot be decoded (or an image that cannot be encoded). */
export class ImageError extends Error {
  override name = "ImageError";
}

/** Deno's error classes for a file-system call that failed on the user's files (not our bug). */
const FILE_SYSTEM_ERRORS = new Set([
  "NotFound",
  "PermissionDenied",
  "AlreadyExists",
  "NotADirectory",
  "IsADirectory",
  "FilesystemLoop",
  "Busy",
  "NotCapable",
]);
/** errno codes Deno leaves on a plain Error: full disk or quota, read-only, I/O, too many files. */
const FILE_SYSTEM_CODES = new Set([
  "ENOSPC",
  "EDQUOT",
  "EROFS",
  "EIO",
  "EMFILE",
  "ENFILE",
  "EFBIG",
  "ENAMETOOLONG",
]);

/**
 * Whether `e` is a file-system call refused by the machine (a full disk, a read-only or missing
 * folder, a missing --allow-write): Deno's message names the call and the path, so it is shown as is.
 */
export function isFileSystemError(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return FILE_SYSTEM_ERRORS.has(e.name) || (typeof code === "string" && FILE_SYSTEM_CODES.has(code));
}
