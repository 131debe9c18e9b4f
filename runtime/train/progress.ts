/** What the loop reports per logged step, as a person reads it and as log.jsonl / `--json` write it. */
import type { LogLine } from "./run_dir.ts";

export interface LogRecord {
  /** Optimizer steps taken, this one included (1-based). */
  readonly step: number;
  /** The run's total steps. */
  readonly steps: number;
  /** The loss of this step's batch, before this step's update. */
  readonly loss: number;
  /** The loss entry's metrics for the same batch (Transfusion: lm, diffusion). */
  readonly metrics: Readonly<Record<string, number>>;
  readonly lr: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Mean wall time per step since the previous log. */
  readonly ms: number;
  readonly tokensPerSecond: number;
  /** Seconds since this process started training (a resume starts from 0). */
  readonly elapsed: number;
  /** Seconds left at the current pace; NaN at the first log, whose step includes the warm-up. */
  readonly eta: number;
}

/** The flat object of log.jsonl and `--json`: `{"step", "loss", <metrics>, "lr", "grad_norm", "ms", ...}`. */
export function logLine(r: LogRecord): LogLine {
  return {
    step: r.step,
    loss: r.loss,
    ...r.metrics,
    lr: r.lr,
    grad_norm: r.gradNorm,
    ms: round(r.ms, 3),
    tok_s: Math.round(r.tokensPerSecond),
    elapsed_s: round(r.elapsed, 3),
  };
}

/** `step 120/1000  loss 2.3412  lm 2.1034  diffusion 0.0462  lr 3.00e-4  |g| 0.81  5120 tok/s  12.5 ms/step  ETA 11s` */
export function progressLine(r: LogRecord): string {
  const width = String(r.steps).length;
  const metrics = Object.entries(r.metrics).map(([k, v]) => `${k} ${fixed(v)}`);
  return [
    `step ${String(r.step).padStart(width)}/${r.steps}`,
    `loss ${fixed(r.loss)}`,
    ...metrics,
    `lr ${r.lr.toExponential(2)}`,
    `|g| ${r.gradNorm.toPrecision(3)}`,
    // A step in a budget's measured window has no pace of its own (runtime/train/loop.ts).
    ...(Number.isFinite(r.ms)
      ? [`${Math.round(r.tokensPerSecond)} tok/s`, `${r.ms.toFixed(1)} ms/step`]
      : ["(measuring the pace)"]),
    `ETA ${duration(r.eta)}`,
  ].join("  ");
}

/**
 * When to log: every `every` steps, or with `every` = 0 whenever 10 steps or 2 seconds have passed
 * since the last log; always at the first step of the process and at `force` points.
 */
export class LogClock {
  #lastStep = 0;
  #lastTime = 0;
  #logged = false;
  constructor(private readonly every: number) {}

  /** Starts the interval the next log measures from (at the resume step, after a save). */
  start(step: number, now: number): void {
    [this.#lastStep, this.#lastTime] = [step, now];
  }

  due(step: number, now: number, force: boolean): boolean {
    if (force || !this.#logged) return true;
    if (this.every > 0) return step % this.every === 0;
    return step - this.#lastStep >= 10 || now - this.#lastTime >= 2000;
  }

  /** Marks a log at `step`; returns the mean milliseconds per step since the previous one. */
  mark(step: number, now: number): number {
    const ms = (now - this.#lastTime) / Math.max(1, step - this.#lastStep);
    [this.#lastStep, this.#lastTime, this.#logged] = [step, now, true];
    return ms;
  }
}

function fixed(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** `42s`, `3m07s`, `2h05m`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
