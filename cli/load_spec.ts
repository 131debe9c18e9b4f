import { isFileSystemError } from "../runtime/file_errors.ts";

/** Spec loading and UsageError live in runtime/ (runtime must not import cli/); re-exported here. */
export { loadSpec, parseOverrides, UsageError } from "../runtime/load_spec.ts";

/**
 * Errors about the user's input (command line, spec, checkpoint, image, settings, device): printed
 * as one line, exit code 1. Anything else is a bug of ours and keeps its stack trace.
 */
const USER_ERRORS = new Set([
  "UsageError",
  "SpecError",
  "DeviceError",
  "CheckpointError",
  "ImageError",
  "TrainError",
  "SamplingError",
  "TokenizerError",
  "ExportError",
]);

/**
 * Runs a CLI main: errors about the user's input print one line and exit 1, and so does a file-system
 * call the machine refused (full disk, read-only folder): Deno's message names the call and the path.
 */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof Error && (USER_ERRORS.has(e.name) || isFileSystemError(e))) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
