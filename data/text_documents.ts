/**
 * A user's text as documents: a .txt or .md file (paragraphs, separated by blank lines, are the
 * documents), a folder (every .txt or .md file under it is one document, in path order) or a JSONL file (one
 * {"text": ...} record per non-blank line). Every problem names the file, and the line of a JSONL
 * file.
 */
import { DataFileError, jsonlRecords, readText, statOrFail, walkFiles } from "./data_files.ts";

export interface TextDocument {
  readonly text: string;
  /** `notes.txt`, `corpus.txt:12` (the paragraph's first line) or `docs.jsonl:3`. */
  readonly from: string;
}

export interface TextListing {
  readonly kind: "file" | "folder" | "jsonl";
  readonly location: string;
  readonly documents: readonly TextDocument[];
}

const TEXT_EXTENSIONS = [".txt", ".md"];

export function listDocuments(location: string): TextListing {
  const info = statOrFail(location, "the text data set");
  if (info.isDirectory) return folderDocuments(location);
  const lower = location.toLowerCase();
  if (lower.endsWith(".jsonl")) return jsonlDocuments(location);
  if (TEXT_EXTENSIONS.some((e) => lower.endsWith(e))) return paragraphDocuments(location);
  throw new DataFileError(
    location,
    'a text data set is a .txt or .md file, a folder of them, or a .jsonl file of {"text": ...} lines',
  );
}

function paragraphDocuments(file: string): TextListing {
  const lines = readText(file).split(/\r?\n/);
  const documents: TextDocument[] = [];
  let start = -1;
  lines.forEach((line, i) => {
    const blank = line.trim() === "";
    if (!blank && start < 0) start = i;
    if ((blank || i === lines.length - 1) && start >= 0) {
      const end = blank ? i : i + 1;
      documents.push({ text: lines.slice(start, end).join("\n").trim(), from: `${file}:${start + 1}` });
      start = -1;
    }
  });
  if (documents.length === 0) throw new DataFileError(file, "the text file is empty");
  return { kind: "file", location: file, documents };
}

function folderDocuments(root: string): TextListing {
  const files = walkFiles(root).filter((p) => TEXT_EXTENSIONS.some((e) => p.toLowerCase().endsWith(e)));
  if (files.length === 0) throw new DataFileError(root, "holds no .txt or .md files");
  const documents = files.map((file) => {
    const text = readText(file).trim();
    if (text === "") throw new DataFileError(file, "the text file is empty");
    return { text, from: file };
  });
  return { kind: "folder", location: root, documents };
}

function jsonlDocuments(file: string): TextListing {
  const documents: TextDocument[] = [];
  for (const { record, line, at } of jsonlRecords(file)) {
    const text = (record as { text?: unknown } | null)?.text;
    if (typeof text !== "string" || text.trim() === "") {
      throw new DataFileError(at, `expected {"text": a non-empty string}, got ${line.slice(0, 80)}`);
    }
    documents.push({ text, from: at });
  }
  if (documents.length === 0) throw new DataFileError(file, "holds no records (every line is blank)");
  return { kind: "jsonl", location: file, documents };
}
