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
