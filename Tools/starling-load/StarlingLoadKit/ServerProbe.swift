// ServerProbe: the server's CPU seconds (utime+stime from /proc/PID/stat) and resident
// memory (VmRSS from /proc/PID/status), sampled around each phase of a run. The same
// numbers for Starling and for an nginx worker running Nchan.
import Foundation

public struct ServerSample: Sendable {
    public var cpuSeconds: Double
    public var rssBytes: Int
    public var atNs: UInt64
}

public enum ServerProbe {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// The sum over several processes (a broker and its Redis); nil if the first is gone.
    public static func sample(pids: [Int32]) -> ServerSample? {
        guard let first = pids.first, var total = sample(pid: first) else { return nil }
        for pid in pids.dropFirst() {
            guard let s = sample(pid: pid) else { continue }
            total.cpuSeconds += s.cpuSeconds
            total.rssBytes += s.rssBytes
        }
        return total
    }

    public static func sample(pid: Int32) -> ServerSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        var rssKB = 0
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            rssKB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return ServerSample(cpuSeconds: (utime + stime) / ticksPerSecond, rssBytes: rssKB * 1024, atNs: System.monotonicNs())
    }
}
