// Logging for the broker: swift-log, to stderr, as text (swift-log's stream handler) or
// JSON (one object per line: time, level, logger, msg, then the metadata fields). The
// access log is its own logger, always at info, on the same stream.
import Logging
import StarlingConfig
import StarlingCore
#if canImport(Glibc)
import Glibc
#endif

enum LogSetup {
    static func bootstrap(level: Logger.Level, format: ServeSettings.LogFormat) {
        LoggingSystem.bootstrap { label in
            let l = label == "starling.access" ? .info : level
            switch format {
            case .text:
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = l
                return h
            case .json:
                return JSONLogHandler(label: label, logLevel: l)
            }
        }
    }
}

/// One JSON object per line on stderr. Numbers given as `.stringConvertible` Int or
/// Double stay numbers; everything else is a string. Each line goes out in one write(2),
/// so lines from several loops never interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let m = event.metadata { fields.merge(m) { $1 } }
        var line = "{\"time\":\"\(Self.timestamp())\",\"level\":\"\(event.level.rawValue)\",\"logger\":\(JSONWriter.quoted(label))"
        line += ",\"msg\":\(JSONWriter.quoted(event.message.description))"
        for key in fields.keys.sorted() where !["time", "level", "logger", "msg"].contains(key) {
            line += ",\(JSONWriter.quoted(key)):\(Self.json(fields[key]!))"
        }
        line += "}\n"
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    static func json(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return JSONWriter.quoted(s)
        case .stringConvertible(let c):
            if let i = c as? Int { return String(i) }
            if let d = c as? Double, d.isFinite { return "\(d)" }
            if let b = c as? Bool { return b ? "true" : "false" }
            return JSONWriter.quoted(c.description)
        case .array(let a): return "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{" + d.keys.sorted().map { "\(JSONWriter.quoted($0)):\(json(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
