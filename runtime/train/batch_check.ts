/**
 * A batch from a spec's data source is checked on the host before it is trained on: a NaN or an
 * infinity in the inputs would make the step's gradients non-finite, and on a GPU whose min/max
 * drop NaN (lavapipe's do) the loss can still come back finite, so the loss check alone would let
 * the parameters be spoiled silently. The scan is one pass over host arrays, small beside a step.
 */

/** `name[index] = value` of the first non-finite float in `batch`, or undefined when all are finite. */
export function nonFiniteInput(batch: Readonly<Record<string, ArrayLike<number>>>): string | undefined {
  for (const [name, values] of Object.entries(batch)) {
    // Integer arrays (tokens, labels) are finite by construction.
    if (ArrayBuffer.isView(values) && !(values instanceof Float32Array || values instanceof Float64Array)) {
      continue;
    }
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) return `${name}[${i}] = ${values[i]}`;
    }
  }
  return undefined;
}
