/**
 * The profiler: one step of an entry as per-dispatch GPU time (timestamp queries, or host-timed where
 * the adapter lacks them) and host spans, written as a Chrome / Perfetto trace.
 */
export {
  type HostSpan,
  type Profile,
  type ProfiledDispatch,
  profileEntry,
  type ProfileOptions,
  type Timing,
} from "./profile.ts";
export { LANES, ticksToMicros, toTrace, type Trace, type TraceEvent } from "./trace.ts";
export { kernelTimes, medianKernelTimes } from "./measure.ts";
