/** Type-level rank arithmetic so that `deno check` catches rank mistakes in specs. */
// Capped at 9 so that a generic rank cannot recurse forever while TypeScript relates types.
type Tuple<N extends number, T extends unknown[] = []> = T["length"] extends N ? T
  : T["length"] extends 9 ? unknown[]
  : Tuple<N, [...T, unknown]>;

/** The larger of two literal ranks (broadcasting); `number` when either is unknown. */
export type MaxRank<A extends number, B extends number> = number extends A ? number
  : number extends B ? number
  : Tuple<A> extends [...Tuple<B>, ...unknown[]] ? A
  : B;

/** R - 1, for a reduction that drops one axis. */
export type Dec<R extends number> = number extends R ? number
  : Tuple<R> extends [unknown, ...infer Rest] ? Rest["length"]
  : never;

/** R + 1, for an op that adds one axis. */
export type Inc<R extends number> = number extends R ? number : [...Tuple<R>, unknown]["length"] & number;
