/**
 * examples/text_lm.ts with a BPE tokenizer read from a tokenizer.json: `text.vocab` is the file's
 * vocabulary and `text.tokenizer` its merges, so the run records the tokenizer in run.json's config and
 * sampling rebuilds it without the file. The committed tokenizer was trained on every caption the
 * templates make (examples/tokenizers/mnist_captions.txt):
 *   deno task tokenizer train examples/tokenizers/mnist_captions.txt --vocab 512 --out examples/tokenizers/mnist_captions.json
 * ("a handwritten digit 7" is 4 tokens instead of 21 bytes, so a caption slot of 8 holds any caption).
 * To use your own, train one on your corpus and point TOKENIZER_FILE at it.
 */
import { loadTokenizerJson } from "../runtime/bpe_json.ts";
import { CAPTION_TEMPLATES } from "../data/mnist_captions.ts";
import { textLm } from "./text_lm.ts";

const TOKENIZER_FILE = new URL("./tokenizers/mnist_captions.json", import.meta.url);

const { tokenizer } = await loadTokenizerJson(TOKENIZER_FILE);

export default textLm({
  name: "text_lm_bpe",
  text: { vocab: tokenizer.vocabSize, captionLength: 8, tokenizer: tokenizer.config },
  templates: CAPTION_TEMPLATES,
});
