/**
 * Where a captioned image data set's files are: a folder of images with sidecar captions, or a
 * JSONL file of {"image", "caption"} records. Only lists and reads captions; decoding is
 * data/image_files.ts. Every problem names the file (and the line of a JSONL file).
 *
 * Folder: every .png, .jpg or .jpeg under it (subfolders included, in path order) is one example;
 * its caption is the text file beside it with the same name and .txt (cat.png -> cat.txt), trimmed.
 * Other files are skipped and counted. JSONL: one record per non-blank line, `image` relative to
 * the JSONL file's folder (or absolute), `caption` a non-empty string.
 */
import { DataFileError, folderOf, jsonlRecords, readText, statOrFail, walkFiles } from "./data_files.ts";

export interface CaptionedFile {
  /** The image file, as it will be read. */
  readonly image: string;
  readonly caption: string;
  /** Where the caption came from: its .txt file, or `pairs.jsonl:3`. */
  readonly captionFrom: string;
}

export interface ImageListing {
  readonly kind: "folder" | "jsonl";
  readonly location: string;
  readonly files: readonly CaptionedFile[];
  /** Files in the folder that are neither an image nor the caption of one. */
  readonly skipped: readonly string[];
}

const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg"];

/** The data set at `location`: a folder, or a .jsonl file. */
export function listImages(location: string): ImageListing {
  const info = statOrFail(location, "the image data set");
  if (info.isDirectory) return listFolder(location);
  if (location.toLowerCase().endsWith(".jsonl")) return listJsonl(location);
  throw new DataFileError(
    location,
    "an image data set is a folder of images with .txt captions, or a .jsonl file of " +
      `{"image": path, "caption": text} lines`,
  );
}

function listFolder(root: string): ImageListing {
  const paths = walkFiles(root);
  const pathSet = new Set(paths);
  const files: CaptionedFile[] = [];
  const captions = new Set<string>();
  for (const image of paths) {
    const ext = extension(image);
    if (!IMAGE_EXTENSIONS.includes(ext)) continue;
    const captionFile = image.slice(0, image.length - ext.length) + ".txt";
    if (!pathSet.has(captionFile)) {
      throw new DataFileError(image, `has no caption: expected the text file ${captionFile} beside it`);
    }
    captions.add(captionFile);
    files.push({ image, caption: readCaption(captionFile), captionFrom: captionFile });
  }
  if (files.length === 0) {
    throw new DataFileError(
      root,
      `holds no images (${IMAGE_EXTENSIONS.join(", ")}) in ${paths.length} files`,
    );
  }
  const skipped = paths.filter((p) => !captions.has(p) && !IMAGE_EXTENSIONS.includes(extension(p)));
  return { kind: "folder", location: root, files, skipped };
}

function listJsonl(file: string): ImageListing {
  const folder = folderOf(file);
  const files: CaptionedFile[] = [];
  for (const { record, line, at } of jsonlRecords(file)) {
    const { image, caption } = (record ?? {}) as Record<string, unknown>;
    if (typeof record !== "object" || Array.isArray(record) || typeof image !== "string" || image === "") {
      throw new DataFileError(at, `expected {"image": path, "caption": text}, got ${line.slice(0, 80)}`);
    }
    if (typeof caption !== "string" || caption.trim() === "") {
      throw new DataFileError(at, `"caption" must be a non-empty string, got ${JSON.stringify(caption)}`);
    }
    const path = image.startsWith("/") ? image : `${folder}/${image}`;
    statOrFail(path, `the image of ${at}`);
    files.push({ image: path, caption: caption.trim(), captionFrom: at });
  }
  if (files.length === 0) throw new DataFileError(file, "holds no records (every line is blank)");
  return { kind: "jsonl", location: file, files, skipped: [] };
}

function readCaption(file: string): string {
  const caption = readText(file).trim();
  if (caption === "") throw new DataFileError(file, "the caption file is empty");
  return caption;
}

function extension(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot <= 0 ? "" : name.slice(dot).toLowerCase();
}
