/**
 * `deno task tokenizer train <corpus files or folders>... --vocab N --out tokenizer.json [--min-frequency F]`
 *   Trains a byte-level BPE (runtime/bpe_train.ts) on the UTF-8 text files given (a folder: every
 *   file under it, hidden ones skipped, in path order, so the result does not depend on the file
 *   system's order), writes it as a Hugging Face tokenizer.json, and prints the compression it
 *   achieves on the corpus in bytes per token (the byte tokenizer's is 1).
 * `deno task tokenizer encode <tokenizer.json> <text>`
 *   Prints the ids of the text and each token's bytes, and what loading the file changed (notes).
 */
import { runCli, UsageError } from "./load_spec.ts";
import { command, parseCommand, usageLine } from "./usage.ts";
import { intFlag } from "../runtime/generate/flags.ts";
import { trainBpe } from "../runtime/bpe_train.ts";
import { byteLevelText, loadTokenizerJson, saveTokenizerJson } from "../runtime/bpe_json.ts";
import type { BpeTokenizer } from "../runtime/bpe.ts";

export const TOKENIZER = command({
  name: "tokenizer",
  args: "train <corpus files or folders>... | encode <tokenizer.json> <text>",
  summary: "train: a byte-level BPE on UTF-8 text files (a folder: every file under it, hidden ones " +
    "skipped, in path order), written as a Hugging Face tokenizer.json, with the compression it achieves " +
    "on the corpus in bytes per token. encode: the ids and tokens a tokenizer.json gives a text.",
  flags: {
    vocab: { type: "string", value: "N", help: "train: target vocabulary, 256 bytes + 5 specials + merges" },
    out: { type: "string", value: "FILE", help: "train: the tokenizer.json to write" },
    "min-frequency": {
      type: "string",
      value: "F",
      help: "train: fewest occurrences of a pair to merge it",
      defaultText: "2",
    },
  },
  examples: [
    "deno task tokenizer train corpus/ --vocab 4096 --out tokenizer.json",
    'deno task tokenizer encode tokenizer.json "a handwritten digit 7"',
  ],
});
const USAGE = usageLine(TOKENIZER);

/** Every file the paths name, a folder's files (recursively, hidden ones skipped) in path order. */
export async function corpusFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string) => {
    const info = await Deno.stat(path).catch((e: Error) => {
      throw new UsageError(`corpus path ${path}: ${e.message}`);
    });
    if (info.isFile) return void files.push(path);
    if (!info.isDirectory) return;
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) if (!entry.name.startsWith(".")) names.push(entry.name);
    for (const name of names.sort()) await walk(`${path.replace(/\/+$/, "")}/${name}`);
  };
  for (const path of paths) await walk(path);
  if (files.length === 0) throw new UsageError(`no corpus files under ${paths.join(", ")}`);
  return files;
}

/** A file's text; a file that is not UTF-8 is named rather than read as replacement characters. */
async function readText(path: string): Promise<string> {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(`corpus file ${path} is not UTF-8 text`);
    throw e;
  }
}

/** UTF-8 bytes per token over `texts`: how much shorter than the byte tokenizer's the sequences are. */
export function bytesPerToken(tokenizer: BpeTokenizer, texts: readonly string[]): number {
  const encoder = new TextEncoder();
  let bytes = 0, tokens = 0;
  for (const text of texts) {
    bytes += encoder.encode(text).length;
    tokens += tokenizer.encode(text).length;
  }
  return tokens === 0 ? 1 : bytes / tokens;
}

type Parsed = ReturnType<typeof parseCommand<typeof TOKENIZER.flags>>;

async function train({ values, positionals }: Parsed) {
  const vocab = intFlag("vocab", values.vocab, 261, 2 ** 21);
  if (vocab === undefined) {
    throw new UsageError(`--vocab N is required (261 = bytes and specials only)\n${USAGE}`);
  }
  if (!values.out) throw new UsageError(`--out tokenizer.json is required\n${USAGE}`);
  if (positionals.length === 0) throw new UsageError(`give at least one corpus file or folder\n${USAGE}`);
  const minFrequency = intFlag("min-frequency", values["min-frequency"], 1) ?? 2;
  const files = await corpusFiles(positionals);
  const texts = await Promise.all(files.map(readText));
  const started = performance.now();
  const tokenizer = trainBpe(texts, { vocab, minFrequency });
  const seconds = (performance.now() - started) / 1000;
  await saveTokenizerJson(values.out, tokenizer);
  const bytes = texts.reduce((n, t) => n + new TextEncoder().encode(t).length, 0);
  const short = tokenizer.vocabSize < vocab
    ? ` (stopped short of ${vocab}: no pair occurs ${minFrequency}+ times)`
    : "";
  console.log(
    `trained on ${files.length} file(s), ${bytes} bytes, in ${
      seconds.toFixed(1)
    } s: vocab ${tokenizer.vocabSize}` +
      `${short}, ${tokenizer.config.merges.length} merges`,
  );
  console.log(`compression on the corpus: ${bytesPerToken(tokenizer, texts).toFixed(3)} bytes per token`);
  console.log(`wrote ${values.out}`);
}

async function encode({ positionals }: Parsed) {
  const [path, text] = positionals;
  if (path === undefined || text === undefined || positionals.length > 2) throw new UsageError(USAGE);
  const { tokenizer, notes } = await loadTokenizerJson(path);
  for (const note of notes) console.log(`note: ${note}`);
  const ids = tokenizer.encode(text);
  console.log(
    `vocab ${tokenizer.vocabSize}; ${ids.length} token(s) for ${new TextEncoder().encode(text).length} bytes`,
  );
  console.log(JSON.stringify(ids));
  console.log(ids.map((id) => byteLevelText(tokenizer.bytesOf(id) ?? [])).join(" "));
}

async function main() {
  const parsed = parseCommand(TOKENIZER, Deno.args);
  const [sub, ...rest] = parsed.positionals;
  if (sub === "train") return await train({ ...parsed, positionals: rest });
  if (sub === "encode") return await encode({ ...parsed, positionals: rest });
  throw new UsageError(sub === undefined ? USAGE : `unknown subcommand ${JSON.stringify(sub)}\n${USAGE}`);
}

if (import.meta.main) await runCli(main);
