/**
 * The row a person asks `deno task generate --row` for, in one line: the spans of the run's row
 * template in order, each
 *   text:"a 3"     a text slot holding this text (JSON string syntax: \" and \\ inside)
 *   text:word      the same, unquoted (no spaces)
 *   text           a text slot the model writes
 *   image          an image the model draws
 *   image:file.png an image given (read from the file)
 * e.g. `text:"a 3" image text:"and a 7" image` for row(text("caption", 16), image(), text("between",
 * 8), image()). Spans may be named instead of counted in order: `between:"and a 7"` fills the slot
 * called "between"; spans not named are written or drawn.
 */
import { describeTemplate, type RowTemplate } from "../../spec/transfusion/rows.ts";
import { SamplingError } from "./prediction.ts";

export type RowPart =
  | { readonly kind: "text"; readonly text?: string }
  | { readonly kind: "image"; readonly file?: string }
  /** `name:value`: the span called name holds value (a text, or an image file for an image span). */
  | { readonly kind: "named"; readonly name: string; readonly value: string };

const PART = /\s*([A-Za-z_][A-Za-z0-9_]*)(?::("(?:[^"\\]|\\.)*"|[^\s"]+))?/y;

/** Parses a `--row` line; a malformed one is an error quoting where it stopped. */
export function parseRowSpec(raw: string): RowPart[] {
  const parts: RowPart[] = [];
  PART.lastIndex = 0;
  let at = 0;
  while (raw.slice(at).trim() !== "") {
    PART.lastIndex = at;
    const m = PART.exec(raw);
    // A span must end at a space or the end: `text:"open` matches `text` and stops at the colon.
    if (!m || !/^(\s|$)/.test(raw.slice(PART.lastIndex))) {
      throw new SamplingError(
        `--row: cannot read ${JSON.stringify(raw.slice(at).trim())}; expected text:"...", text, image, ` +
          `image:file.png or name:"..." separated by spaces`,
      );
    }
    at = PART.lastIndex;
    const [, key, rawValue] = m;
    let value: string | undefined;
    if (rawValue !== undefined) {
      try {
        value = rawValue.startsWith('"') ? JSON.parse(rawValue) as string : rawValue;
      } catch {
        throw new SamplingError(`--row: ${rawValue} is not a valid quoted text`);
      }
    }
    if (key === "text") parts.push(value === undefined ? { kind: "text" } : { kind: "text", text: value });
    else if (key === "image") {
      parts.push(value === undefined ? { kind: "image" } : { kind: "image", file: value });
    } else if (value === undefined) {
      throw new SamplingError(`--row: "${key}" needs a value (${key}:"..."), or write text or image`);
    } else parts.push({ kind: "named", name: key!, value });
  }
  return parts;
}

/**
 * The given spans of `parts` by template span name: texts, and image files to read. Parts in order
 * (text / image) must follow the template span by span; named parts may come in any order.
 */
export function matchRow(
  parts: readonly RowPart[],
  template: RowTemplate,
): { texts: Record<string, string>; images: Record<string, string> } {
  const shown = describeTemplate(template);
  const texts: Record<string, string> = {};
  const images: Record<string, string> = {};
  const ordered = parts.filter((p) => p.kind !== "named");
  const named = parts.filter((p): p is Extract<RowPart, { kind: "named" }> => p.kind === "named");
  if (ordered.length > 0 && named.length > 0) {
    throw new SamplingError(`--row: give every span in order, or name them; not both (template ${shown})`);
  }
  if (ordered.length > 0) {
    if (ordered.length !== template.spans.length) {
      throw new SamplingError(
        `--row has ${ordered.length} span(s) (${ordered.map((p) => p.kind).join(" ")}); the run's row ` +
          `template has ${template.spans.length}: ${shown}`,
      );
    }
    ordered.forEach((p, i) => {
      const span = template.spans[i]!;
      if (p.kind !== span.kind) {
        throw new SamplingError(
          `--row span ${i + 1} is ${p.kind}, but the template's span ${i + 1} is ${span.kind} ` +
            `"${span.name}": ${shown}`,
        );
      }
      if (p.kind === "text" && p.text !== undefined) texts[span.name] = p.text;
      if (p.kind === "image" && p.file !== undefined) images[span.name] = p.file;
    });
  }
  for (const p of named) {
    const span = template.spans.find((s) => s.name === p.name);
    if (!span) throw new SamplingError(`--row: the row template has no span "${p.name}": ${shown}`);
    if (span.kind === "text") texts[span.name] = p.value;
    else images[span.name] = p.value;
  }
  return { texts, images };
}
