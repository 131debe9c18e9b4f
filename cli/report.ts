/**
 * The demo's report.html: one self-contained page per demo folder (pictures are files next to it,
 * referenced by relative path) with, for each model shown (trained now, and a shipped checkpoint
 * when there is one), the evaluation figures, a sample grid per digit caption, captions of real
 * held-out digits, and the loss curve.
 */
import { type Weights } from "../runtime/generate/mod.ts";
import {
  type DigitEval,
  mentionedDigit,
  msPerStep,
  percent as pct,
  percentRange as ci,
} from "../data/mod.ts";

export interface ReportSection {
  /** What this model is, e.g. "trained now: 1200 steps in 8.0 min". */
  readonly label: string;
  readonly run: {
    readonly dir: string;
    readonly spec: string;
    readonly step: number;
    /** Absent for a model evaluated in training (its last-step weights). */
    readonly weights?: Weights;
  };
  readonly eval: DigitEval;
  /** One grid per digit: its caption and the PNG (path relative to the report). */
  readonly grids: readonly { readonly digit: number; readonly caption: string; readonly file: string }[];
  /** Real held-out digits with the model's caption. */
  readonly captions: readonly { readonly file: string; readonly label: number; readonly caption: string }[];
  /** The loss curve SVG (relative path), if the run has one. */
  readonly lossCurve?: string;
}

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { padding: .25em .8em; text-align: left; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
.grids, .captions { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; text-align: center; font-size: .85em; }
img.px { image-rendering: pixelated; }
.wrong { color: #b00; } .meta { color: #666; font-size: .9em; }`;

export function reportHtml(
  title: string,
  sections: readonly ReportSection[],
  notes: readonly string[],
): string {
  return [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head>`,
    "<body>",
    `<h1>${esc(title)}</h1>`,
    ...notes.map((n) => `<p class="meta">${esc(n)}</p>`),
    summaryTable(sections),
    ...sections.map(section),
    "</body></html>",
    "",
  ].join("\n");
}

function summaryTable(sections: readonly ReportSection[]): string {
  const row = (cells: readonly string[], tag = "td") =>
    `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join("")}</tr>`;
  const lossKeys = [...new Set(sections.flatMap((s) => Object.keys(s.eval.heldOut.values)))];
  return [
    "<table>",
    row([
      "model",
      "generated-digit accuracy",
      "captioning accuracy",
      ...lossKeys.map((k) => `held-out ${esc(k)}`),
    ], "th"),
    ...sections.map((s) =>
      row([
        esc(s.label),
        pct(s.eval.generation.accuracy),
        pct(s.eval.captioning.accuracy),
        ...lossKeys.map((k) => s.eval.heldOut.values[k]?.toFixed(4) ?? "-"),
      ])
    ),
    "</table>",
  ].join("\n");
}

function section(s: ReportSection): string {
  const g = s.eval.generation;
  const c = s.eval.captioning;
  const facts = [
    [
      "run",
      `${esc(s.run.dir)} (spec ${esc(s.run.spec)}, step ${s.run.step}${
        s.run.weights ? `, ${s.run.weights === "ema" ? "moving-average" : "last-step"} weights` : ""
      })`,
    ],
    [
      "generated-digit accuracy",
      `${pct(g.accuracy)} (95% CI ${ci(g.interval95)}) over ${
        10 * g.nPerDigit
      } images (${g.nPerDigit} per digit, caption "${esc(g.template)}", ` +
      `${g.method} ${g.steps} steps, guidance ${g.cfg}; ${msPerStep(g.secondsPerStep)} ms per step)`,
    ],
    ["per digit", g.perDigit.map((a, d) => `${d}: ${pct(a)}`).join(", ")],
    [
      "classifier",
      `examples/digit_classifier.ts: ${
        pct(s.eval.classifier.frameAccuracy)
      } on held-out real digits in the ` +
      `model's image frame, ${pct(s.eval.classifier.testAccuracy)} at 28x28`,
    ],
    [
      "captioning accuracy",
      `${pct(c.accuracy)} (95% CI ${ci(c.interval95)}) over ${c.count} held-out digits (greedy)`,
    ],
    [
      "held-out losses",
      Object.entries(s.eval.heldOut.values).map(([k, v]) => `${esc(k)} ${v.toFixed(4)}`).join(", ") || "none",
    ],
  ];
  return [
    `<h2>${esc(s.label)}</h2>`,
    `<table>${facts.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("")}</table>`,
    "<h3>Samples per caption</h3>",
    `<div class="grids">${
      s.grids.map((x) =>
        `<figure><img class="px" src="${esc(x.file)}" width="240" alt="samples of ${esc(x.caption)}">` +
        `<figcaption>${esc(x.caption)}</figcaption></figure>`
      ).join("")
    }</div>`,
    "<h3>Captions of held-out real digits</h3>",
    `<div class="captions">${
      s.captions.map((x) => {
        const wrong = mentionedDigit(x.caption) !== x.label;
        return `<figure><img class="px" src="${esc(x.file)}" width="84" alt="digit ${x.label}">` +
          `<figcaption${wrong ? ' class="wrong"' : ""}>${
            esc(x.caption) || "<i>(empty)</i>"
          }</figcaption></figure>`;
      }).join("")
    }</div>`,
    ...(s.lossCurve ? ["<h3>Training loss</h3>", `<img src="${esc(s.lossCurve)}" alt="loss curve">`] : []),
  ].join("\n");
}

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
