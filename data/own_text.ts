/**
 * A user's text as language-model rows: documents (data/text_documents.ts) tokenized as BOS, the
 * text's ids, EOS, and packed several per row of `seq` positions. Each document is its own run of
 * positions in the row's layout (spec/layout_builder.ts Segments with their `doc`), so a mask with
 * sameDocument() keeps documents from attending to each other and `pos` restarts at every BOS.
 *
 * Packing is first-fit in data-set order: a document goes into the current row if it fits in what
 * is left, else it starts the next row (the rest of the row is padding, doc -1). A document longer
 * than a row is cut into row-long pieces (`long: "split"`, the default: nothing is lost; each piece
 * is a document of its own, as a row cannot attend to another row anyway) or cut at the row's end
 * (`long: "truncate"`: the tokens past it are dropped). Both are counted in `packing` and shown by
 * describe(), which training prints before its first step: never silent.
 *
 * Packing happens once, when the source is made; a batch is rows of the packed set: row g = step *
 * batch + i is position g mod n of the permutation of epoch floor(g / n), a pure function of
 * (seed, step). The held-out documents (a fixed fraction, the same for every run) are packed apart.
 */
import type { Batch, DataSource } from "../spec/data.ts";
import { buildLayout, layoutFeed, type Segment } from "../spec/layout_builder.ts";
import {
  ByteTokenizer,
  SPECIAL,
  textTokenizer,
  type TextTokenizerConfig,
  type Tokenizer,
} from "../runtime/tokenizer.ts";
import { checkStep, EpochOrder, splitHeldOut } from "./epoch_order.ts";
import { DataError, filePath } from "./data_files.ts";
import { listDocuments, type TextDocument, type TextListing } from "./text_documents.ts";

/**
 * The vocabulary is `text.vocab` (a Transfusion config, whose `text.tokenizer` is then the default
 * tokenizer) or `vocab`; `seq` when dims has none.
 */
export interface TextFilesConfig {
  readonly text?: TextTokenizerConfig;
  readonly vocab?: number;
  readonly seq?: number;
}

export interface TextFilesOptions {
  /**
   * Any tokenizer (runtime/tokenizer.ts `Tokenizer`, e.g. a trained BPE); default the config's
   * `text.tokenizer`, else the byte tokenizer, with a PAD token when the vocabulary has room for one.
   */
  readonly tokenizer?: Tokenizer;
  /** A document longer than a row: "split" into row-long pieces (default) or "truncate" at the row. */
  readonly long?: "split" | "truncate";
  /** Fraction of the documents held out for evaluation (default 0.1; at least one when there are two). */
  readonly heldOut?: number;
}

/** What packing did to the documents of one split. */
export interface PackingReport {
  readonly documents: number;
  /** Token ids of the documents, BOS and EOS included. */
  readonly tokens: number;
  readonly rows: number;
  /** Documents longer than a row. */
  readonly long: number;
  /** The pieces those were split into (split), or 0 (truncate). */
  readonly pieces: number;
  /** Documents cut at the row's end (truncate), and the ids dropped. */
  readonly truncated: number;
  readonly droppedTokens: number;
}

/** One packed row: its token ids and one segment per document in it. */
export interface PackedRow {
  readonly tokens: readonly number[];
  readonly segments: readonly Segment[];
}

export interface TextFilesSource extends DataSource {
  readonly evalBatches: number;
  evalBatch(index: number): Batch;
  readonly listing: TextListing;
  readonly train: { readonly rows: readonly PackedRow[]; readonly packing: PackingReport };
  readonly heldOut: { readonly rows: readonly PackedRow[]; readonly packing: PackingReport };
}

/** A spec's `data:` for a text file, a folder of .txt files or a JSONL file of {"text": ...}. */
export function textFiles(
  location: string | URL,
  opts: TextFilesOptions = {},
): (config: TextFilesConfig, dims: Readonly<Record<string, number>>) => TextFilesSource {
  return (config, dims) => textCorpus(config, dims, filePath(location), opts);
}

/** `dims.batch` rows of `dims.seq` (or config.seq) positions: tokens and the layout fields. */
export function textCorpus(
  config: TextFilesConfig,
  dims: Readonly<Record<string, number>>,
  location: string,
  opts: TextFilesOptions = {},
): TextFilesSource {
  const who = `text ${location}`;
  const batch = dims.batch;
  const seq = dims.seq ?? config.seq;
  const sizes = [["dims.batch", batch, 1], ["seq (dims.seq or config.seq)", seq, 2]] as const;
  for (const [name, v, least] of sizes) {
    if (v === undefined || !Number.isInteger(v) || v < least) {
      throw new DataError(`${who}: ${name} must be an integer >= ${least}, got ${v}`);
    }
  }
  const vocab = config.text?.vocab ?? config.vocab;
  if (vocab === undefined) {
    throw new DataError(`${who}: the config has no text.vocab or vocab to check ids against`);
  }
  const tokenizer = opts.tokenizer ??
    (config.text?.tokenizer ? textTokenizer(config.text) : new ByteTokenizer({ pad: vocab > SPECIAL.pad }));
  if (tokenizer.vocabSize > vocab) {
    throw new DataError(
      `${who}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary is ${vocab}; ` +
        `raise the vocab to at least ${tokenizer.vocabSize}`,
    );
  }
  const long = opts.long ?? "split";
  if (long !== "split" && long !== "truncate") {
    throw new DataError(`${who}: long must be "split" or "truncate", got ${JSON.stringify(long)}`);
  }
  const listing = listDocuments(location);
  const ids = listing.documents.map((d) => documentIds(d, tokenizer));
  const split = splitHeldOut(ids.length, opts.heldOut ?? 0.1, 0, who);
  const train = packDocuments(split.train.map((i) => ids[i]!), seq!, long);
  const heldOut = packDocuments(split.heldOut.map((i) => ids[i]!), seq!, long);
  const order = new EpochOrder(train.rows.length, 4);
  const evalBatches = Math.ceil(heldOut.rows.length / batch!);
  const assemble = (rows: readonly PackedRow[]): Batch => textBatch(rows, seq!, tokenizer.padId);

  return {
    tokensPerBatch: batch! * seq!,
    evalBatches,
    listing,
    train,
    heldOut,
    batch(step, seed) {
      checkStep(who, step);
      return assemble(
        Array.from({ length: batch! }, (_, i) => train.rows[order.at(seed, step * batch! + i)]!),
      );
    },
    // Held-out rows in order; the last batch wraps around to the first rows.
    evalBatch(index) {
      if (!Number.isInteger(index) || index < 0 || index >= evalBatches) {
        throw new Error(`${who}: eval batch ${index} is not in 0..${evalBatches - 1}`);
      }
      const n = heldOut.rows.length;
      return assemble(Array.from({ length: batch! }, (_, i) => heldOut.rows[(index * batch! + i) % n]!));
    },
    describe: () => describeText(listing, train.packing, heldOut.packing, seq!, long),
  };
}

/** BOS, the text's ids, EOS; an id outside the tokenizer's vocabulary names the document. */
function documentIds(d: TextDocument, tokenizer: Tokenizer): number[] {
  const ids = tokenizer.encode(d.text);
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize);
  if (bad !== undefined) {
    throw new DataError(`${d.from}: the tokenizer gave id ${bad}, outside 0..${tokenizer.vocabSize - 1}`);
  }
  return [SPECIAL.bos, ...ids, SPECIAL.eos];
}

/** First-fit packing in order (see the file comment); every row has at least one document. */
export function packDocuments(
  documents: readonly (readonly number[])[],
  seq: number,
  long: "split" | "truncate",
): { rows: PackedRow[]; packing: PackingReport } {
  const rows: { tokens: number[]; segments: Segment[] }[] = [];
  let [tokens, longDocs, pieces, truncated, dropped] = [0, 0, 0, 0, 0];
  const place = (ids: readonly number[]) => {
    let row = rows.at(-1);
    if (!row || row.tokens.length + ids.length > seq) rows.push(row = { tokens: [], segments: [] });
    row.segments.push({ kind: "text", length: ids.length, doc: row.segments.length });
    row.tokens.push(...ids);
  };
  for (const ids of documents) {
    tokens += ids.length;
    if (ids.length <= seq) {
      place(ids);
      continue;
    }
    longDocs++;
    if (long === "truncate") {
      truncated++;
      dropped += ids.length - seq;
      place(ids.slice(0, seq));
      continue;
    }
    for (let at = 0; at < ids.length; at += seq, pieces++) place(ids.slice(at, at + seq));
  }
  const packing = {
    documents: documents.length,
    tokens,
    rows: rows.length,
    long: longDocs,
    pieces,
    truncated,
    droppedTokens: dropped,
  };
  return { rows, packing };
}

/** tokens [B, seq] (padding: padId) and the layout fields of `rows`. */
export function textBatch(rows: readonly PackedRow[], seq: number, padId: number): Batch {
  const tokens = new Int32Array(rows.length * seq).fill(padId);
  rows.forEach((r, b) => tokens.set(r.tokens, b * seq));
  const { fields } = buildLayout(rows.map((r) => r.segments), seq);
  return { tokens, ...layoutFeed(fields) };
}

function describeText(
  listing: TextListing,
  train: PackingReport,
  heldOut: PackingReport,
  seq: number,
  long: "split" | "truncate",
): string {
  const fill = (p: PackingReport) =>
    p.rows === 0 ? 0 : Math.round((100 * (p.tokens - p.droppedTokens)) / (p.rows * seq));
  const both = [train, heldOut];
  const longDocs = both.reduce((n, p) => n + p.long, 0);
  const parts = [
    `own text (${listing.kind} ${listing.location}): ${train.documents} train / ${heldOut.documents} held-out documents`,
    `${train.tokens} train tokens packed into ${plural(train.rows, "row")} of ${seq} (${
      fill(train)
    }% filled)`,
  ];
  if (longDocs === 0) parts.push("no document longer than a row");
  else if (long === "split") {
    const pieces = both.reduce((n, p) => n + p.pieces, 0);
    parts.push(`${plural(longDocs, "document")} longer than a row split into ${pieces} pieces`);
  } else {
    const dropped = both.reduce((n, p) => n + p.droppedTokens, 0);
    parts.push(
      `TRUNCATED: ${
        plural(longDocs, "document")
      } longer than a row lost ${dropped} tokens (long: "split" keeps them)`,
    );
  }
  return parts.join(", ");
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
