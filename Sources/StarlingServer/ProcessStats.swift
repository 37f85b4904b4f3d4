// ProcessStats: the process's CPU time, memory and descriptors, read from /proc at
// scrape time (Linux). Exported under the names every Prometheus client library uses.
#if canImport(Glibc)
import Glibc
#endif

public struct ProcessStats: Sendable {
    public var cpuSeconds: Double = 0
    public var residentBytes: Int = 0
    public var virtualBytes: Int = 0
    public var openFDs: Int = 0
    public var maxFDs: Int = 0
    public var startTimeSeconds: Double = 0

    /// Reads /proc/self; a field it cannot read stays 0.
    public static func read() -> ProcessStats {
        var s = ProcessStats()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = sysconf(Int32(_SC_PAGESIZE))
        if let stat = readText("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
            let f = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ n: Int) -> Double { n - 3 < f.count ? Double(f[n - 3]) ?? 0 : 0 }
            s.cpuSeconds = (field(14) + field(15)) / ticks
            s.virtualBytes = Int(field(23))
            s.residentBytes = Int(field(24)) * page
            if let boot = bootTime() { s.startTimeSeconds = boot + field(22) / ticks }
        }
        if let dir = opendir("/proc/self/fd") {
            var n = 0
            while let entry = readdir(dir) {
                let first = entry.pointee.d_name.0
                if first != 0x2E { n += 1 }  // "." and ".."
            }
            closedir(dir)
            s.openFDs = max(0, n - 1)  // the directory stream itself
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { s.maxFDs = Int(limit.rlim_cur) }
        return s
    }

    private static func bootTime() -> Double? {
        guard let text = readText("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6))
        }
        return nil
    }

    private static func readText(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
