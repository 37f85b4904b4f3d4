// System: process-level facts the load tool needs: a clock two processes on one machine
// share (the publisher stamps it, the subscriber subtracts it), the file-descriptor
// limit, the tool's own CPU time, and unbuffered stderr for the progress line.
#if canImport(Glibc)
import Glibc
#endif

public enum System {
    /// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
    public static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
    @discardableResult
    public static func raiseFileLimit() -> Int {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        return Int(lim.rlim_cur)
    }

    /// User + system CPU seconds this process has used so far (the load tool's own cost).
    public static func ownCPUSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        let user = Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6
        let system = Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
        return user + system
    }

    public static var stderrIsTerminal: Bool { isatty(2) != 0 }

    /// Unbuffered, so a progress line shows at once.
    public static func writeStderr(_ s: String) { write(fd: 2, s) }

    /// Unbuffered stdout: a worker's "ready" line must reach its parent at once.
    public static func writeStdout(_ s: String) { write(fd: 1, s) }

    private static func write(fd: Int32, _ s: String) {
        var s = s
        s.withUTF8 { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}
