/**
 * "Did you mean": the known names nearest a misspelt one, for error messages (config keys, CLI
 * flags). Nearness is the edit distance (insert, delete, substitute, swap two neighbours), with the
 * last segment of a dotted key also compared alone, so `backbone.dimm` and `dimm` both find
 * `backbone.dim`.
 */

/** Optimal-string-alignment distance between `a` and `b` (case-insensitive). */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase(), t = b.toLowerCase();
  // rows[i][j]: distance between s[0..i) and t[0..j)
  const rows: number[][] = Array.from({ length: s.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= t.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[s.length]![t.length]!;
}

/** How far `name` is from `candidate`: the whole key, or its last dotted segment, whichever is nearer. */
function distance(name: string, candidate: string): number {
  const last = candidate.slice(candidate.lastIndexOf(".") + 1);
  const whole = editDistance(name, candidate);
  return name.includes(".") ? whole : Math.min(whole, editDistance(name, last));
}

/**
 * Whether `d` is close enough to suggest: a third of the length of the name's last dotted segment
 * (the part a typo is usually in; `backbone.x` is not near `backbone.dim`), at least 1, at most 3.
 */
function closeEnough(name: string, d: number): boolean {
  const last = name.length - name.lastIndexOf(".") - 1;
  return d <= Math.max(1, Math.min(3, Math.floor(last / 3)));
}

/** The candidates close enough to `name` to be what was meant, nearest first (ties keep their order). */
export function closeMatches(name: string, candidates: readonly string[]): string[] {
  return candidates
    .map((c, i) => ({ c, i, d: distance(name, c) }))
    .filter((x) => closeEnough(name, x.d))
    .sort((x, y) => x.d - y.d || x.i - y.i)
    .map((x) => x.c);
}

/** The one candidate nearest `name` if it is close enough to suggest, else undefined. */
export function nearest(name: string, candidates: readonly string[]): string | undefined {
  return closeMatches(name, candidates)[0];
}
