/** A problem with what was asked of the export (batch sizes, names torch cannot take): one line for the CLI. */
export class ExportError extends Error {
  override name = "ExportError";
}
