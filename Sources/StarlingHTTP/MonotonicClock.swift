// MonotonicClock: nanoseconds from libuv's monotonic clock, for durations (request and
// stream times in /metrics and the access log); never for event IDs.
import CLibUV

public enum MonotonicClock {
    @inline(__always)
    public static func nowNs() -> UInt64 { uv_hrtime() }
}
