// ServerProbe: the server's CPU seconds (utime+stime from /proc/PID/stat) and resident
// memory (VmRSS from /proc/PID/status), sampled around each phase of a run; the same
// numbers for Starling and for an nginx worker running Nchan. Beside them, the busy and
// stolen time of the cores the run uses (/proc/stat), so a run can tell when something
// else ran on its cores: pinning a server with taskset does not keep other work off.
import Foundation

public struct ServerSample: Sendable, Codable {
    public var atNs: UInt64
    /// utime+stime of the measured processes (the server and any also-measured ones).
    public var cpuSeconds: Double
    public var rssBytes: Int
    /// user+nice+system+irq+softirq seconds of the run's cores so far, over all processes.
    public var coresBusySeconds: Double
    /// Time the hypervisor ran something else while these cores wanted to run.
    public var coresStealSeconds: Double
}

public enum ServerProbe {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// The sum over several processes (a broker and its Redis); nil if the first is gone.
    /// `cores`: whose /proc/stat times to add (the server's and the load tool's).
    public static func sample(pids: [Int32], cores: [Int]) -> ServerSample? {
        guard let first = pids.first, var total = sample(pid: first) else { return nil }
        for pid in pids.dropFirst() {
            guard let s = sample(pid: pid) else { continue }
            total.cpuSeconds += s.cpuSeconds
            total.rssBytes += s.rssBytes
        }
        let times = coreTimes(cores)
        total.coresBusySeconds = times.busy
        total.coresStealSeconds = times.steal
        return total
    }

    public static func sample(pid: Int32) -> ServerSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let rssKB = Int(statusField("VmRSS:", in: status)?.split(separator: " ").first ?? "") ?? 0
        return ServerSample(atNs: System.monotonicNs(), cpuSeconds: (utime + stime) / ticksPerSecond,
                            rssBytes: rssKB * 1024, coresBusySeconds: 0, coresStealSeconds: 0)
    }

    /// The cores a process may run on (`Cpus_allowed_list`, e.g. "0" or "0-1,3"); empty if unknown.
    public static func allowedCores(pid: Int32) -> [Int] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let list = statusField("Cpus_allowed_list:", in: status) else { return [] }
        return parseCPUList(list)
    }

    /// "0-2,5" → [0, 1, 2, 5].
    public static func parseCPUList(_ list: String) -> [Int] {
        var out: [Int] = []
        for part in list.split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if ends.count == 1 { out.append(ends[0]) }
            if ends.count == 2, ends[0] <= ends[1] { out += Array(ends[0]...ends[1]) }
        }
        return out
    }

    /// Busy and steal seconds of `cores`, from the per-CPU lines of /proc/stat.
    static func coreTimes(_ cores: [Int]) -> (busy: Double, steal: Double) {
        guard !cores.isEmpty, let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return (0, 0) }
        let wanted = Set(cores)
        var busy = 0.0, steal = 0.0
        for line in stat.split(separator: "\n") where line.hasPrefix("cpu") && !line.hasPrefix("cpu ") {
            let f = line.split(separator: " ")
            // cpuN user nice system idle iowait irq softirq steal guest guest_nice
            guard f.count > 8, let n = Int(f[0].dropFirst(3)), wanted.contains(n) else { continue }
            let v = f.dropFirst().map { Double($0) ?? 0 }
            busy += v[0] + v[1] + v[2] + v[5] + v[6]
            steal += v[7]
        }
        return (busy / ticksPerSecond, steal / ticksPerSecond)
    }

    private static func statusField(_ name: String, in status: String) -> String? {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return line.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
