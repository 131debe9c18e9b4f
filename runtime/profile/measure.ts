/** Measured kernel times from profiles, for `explain --measure`. */
import type { Profile } from "./profile.ts";

/** GPU microseconds per plan kernel index in one profile, summed over its dispatches. */
export function kernelTimes(p: Profile): Map<number, number> {
  const by = new Map<number, number>();
  for (const d of p.dispatches) by.set(d.kernel, (by.get(d.kernel) ?? 0) + d.durUs);
  return by;
}

/**
 * Per kernel index, the median over the profiles of its summed GPU time (microseconds); an even
 * count takes the mean of the middle two. The profiles must be of one entry of one plan.
 */
export function medianKernelTimes(profiles: readonly Profile[]): Map<number, number> {
  if (profiles.length === 0) throw new Error("medianKernelTimes needs at least one profile");
  const [first, ...rest] = profiles;
  for (const p of rest) {
    if (
      p.model !== first!.model || p.entry !== first!.entry || p.dispatches.length !== first!.dispatches.length
    ) {
      throw new Error(
        `medianKernelTimes: profiles of ${first!.model} ${first!.entry} (${first!.dispatches.length} ` +
          `dispatches) and ${p.model} ${p.entry} (${p.dispatches.length}) cannot be combined`,
      );
    }
  }
  const each = profiles.map(kernelTimes);
  const out = new Map<number, number>();
  for (const k of each[0]!.keys()) out.set(k, median(each.map((m) => m.get(k) ?? 0)));
  return out;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
