/**
 * `--data KIND:PATH` for `deno task train`: train a spec on the user's own files instead of the
 * data source the spec declares.
 *   images:DIR        a folder of images with .txt captions beside them (or a .jsonl, as below)
 *   jsonl:FILE        a JSONL file of {"image": path, "caption": text} lines (paths relative to it)
 *   text:PATH         a .txt file (paragraphs are documents), a folder of .txt files, or a JSONL
 *                     file of {"text": ...} lines, for language models
 * Images need a Transfusion-shaped config (text.captionLength, image.size, ...); text needs a
 * vocabulary (text.vocab or vocab) and a seq.
 */
import type { DataSource } from "../spec/data.ts";
import { DataError } from "./data_files.ts";
import { imageCaptions, type ImageCaptionsConfig } from "./own_images.ts";
import { textCorpus, type TextFilesConfig } from "./own_text.ts";

export const DATA_KINDS = ["images", "jsonl", "text"] as const;
export type DataKind = typeof DATA_KINDS[number];

/** A spec's data factory, as `model({ data })` takes it. */
export type DataFactory = (config: never, dims: Readonly<Record<string, number>>) => DataSource;

export function parseDataFlag(value: string): { kind: DataKind; path: string } {
  const colon = value.indexOf(":");
  const kind = value.slice(0, colon) as DataKind;
  const path = value.slice(colon + 1);
  if (colon < 0 || !DATA_KINDS.includes(kind) || path === "") {
    throw new DataError(
      `--data expects KIND:PATH with KIND one of ${DATA_KINDS.join(", ")} ` +
        `(images:./my_folder, jsonl:./pairs.jsonl, text:./corpus/), got "${value}"`,
    );
  }
  return { kind, path };
}

/** The data factory that `--data` names. */
export function dataFromFlag(value: string): DataFactory {
  const { kind, path } = parseDataFlag(value);
  if (kind === "text") {
    return (config, dims) => textCorpus(config as TextFilesConfig, dims, path);
  }
  if (kind === "jsonl" && !path.toLowerCase().endsWith(".jsonl")) {
    throw new DataError(
      `--data jsonl:${path}: expected a .jsonl file of {"image": path, "caption": text} lines`,
    );
  }
  return (config, dims) => imageCaptions(config as ImageCaptionsConfig, dims, path);
}
