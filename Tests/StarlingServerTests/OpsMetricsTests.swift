// /metrics (SPEC §8): histograms that move under load, answers by route and status class,
// stream durations, process figures from /proc; the whole exposition well-formed (checked
// here line by line, and by `promtool check metrics` where promtool is installed —
// ops/scripts/check-ops.sh fetches it from Debian's prometheus package).
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class MetricsTests: XCTestCase {
    func testHistogramsAndCountersMoveUnderLoad() throws {
        try onEachEngine { b, engine in
            let before = try b.sample("starling_publish_to_write_seconds_count")
            let ch = uniqueChannel()
            let sub = try b.client.subscribe(ch)
            let count = 300
            try b.publishNumbered(ch, count: count, batch: 30)  // 10 requests
            XCTAssertEqual(try sub.next(count, timeout: 10).count, count, "[\(engine)]")
            // Observed after the loop flushes the writes: every fanned-out event once.
            let deadline = Date().addingTimeInterval(3)
            while try b.sample("starling_publish_to_write_seconds_count") - before < Double(count), Date() < deadline { usleep(20_000) }
            XCTAssertEqual(try b.sample("starling_publish_to_write_seconds_count") - before, Double(count), "[\(engine)]")
            XCTAssertGreaterThan(try b.sample("starling_publish_to_write_seconds_bucket{le=\"+Inf\"}"), 0)
            XCTAssertGreaterThanOrEqual(try b.sample("starling_request_duration_seconds_count{route=\"publish\"}"), 10)
            XCTAssertGreaterThanOrEqual(try b.sample("starling_responses_total{route=\"publish\",status=\"2xx\"}"), 10)
            XCTAssertGreaterThanOrEqual(try b.sample("starling_responses_total{route=\"subscribe\",status=\"2xx\"}"), 1)
            XCTAssertEqual(try b.client.request("GET", "/nowhere").status, 404)
            XCTAssertGreaterThanOrEqual(try b.sample("starling_responses_total{route=\"other\",status=\"4xx\"}"), 1)
            // A stream that ends is timed.
            let streams = try b.sample("starling_stream_duration_seconds_count")
            sub.connection.shutdownWrite()
            _ = try? sub.readToEnd(timeout: 1)
            let end = Date().addingTimeInterval(3)
            while try b.sample("starling_stream_duration_seconds_count") == streams, Date() < end { usleep(20_000) }
            XCTAssertEqual(try b.sample("starling_stream_duration_seconds_count"), streams + 1)
            // The process's own figures.
            XCTAssertGreaterThan(try b.sample("process_open_fds"), 3)
            XCTAssertGreaterThan(try b.sample("process_resident_memory_bytes"), 1_000_000)
            XCTAssertGreaterThan(try b.sample("process_cpu_seconds_total"), 0)
            XCTAssertGreaterThan(try b.sample("process_start_time_seconds"), 1_600_000_000)
            XCTAssertEqual(try b.sample("starling_store_ready"), 1)
        }
    }

    func testExpositionIsWellFormed() throws {
        try onEachEngine { b, engine in
            // Some traffic first, so every family has samples.
            let ch = uniqueChannel()
            let sub = try b.client.subscribe(ch)
            try b.publishNumbered(ch, count: 20)
            _ = try sub.next(20)
            let text = try b.metricsText()
            XCTAssertEqual(MetricsTests.problems(in: text), [], "[\(engine)]")
            if let promtool = MetricsTests.promtool() {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: promtool)
                p.arguments = ["check", "metrics"]
                let input = Pipe(), out = Pipe()
                p.standardInput = input
                p.standardOutput = out
                p.standardError = out
                try p.run()
                input.fileHandleForWriting.write(Data(text.utf8))
                try input.fileHandleForWriting.close()
                let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                XCTAssertEqual(p.terminationStatus, 0, "promtool check metrics: \(said)")
            }
        }
    }

    /// promtool on PATH, or where check-ops.sh unpacks it.
    static func promtool() -> String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["STARLING_OPS_TOOLS"] ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/starling-ops")
        let candidates = (env["PATH"] ?? "").split(separator: ":").map { "\($0)/promtool" } + ["\(cache)/prometheus/usr/bin/promtool"]
        return candidates.first(where: FileManager.default.isExecutableFile)
    }

    /// The text format's rules, line by line: every sample's family has HELP and TYPE
    /// before it, counters end in _total, histogram buckets are cumulative and end at +Inf
    /// equal to _count, values are numbers, no family is declared twice.
    static func problems(in text: String) -> [String] {
        var problems: [String] = []
        var types: [String: String] = [:]
        var helped: Set<String> = []
        var lastBucket: [String: Double] = [:]
        var infBucket: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let name = String(line.split(separator: " ")[2])
                if !helped.insert(name).inserted { problems.append("HELP twice for \(name)") }
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                let (name, type) = (String(parts[2]), String(parts[3]))
                if types[name] != nil { problems.append("TYPE twice for \(name)") }
                types[name] = type
                if type == "counter", !name.hasSuffix("_total") { problems.append("counter \(name) does not end in _total") }
                continue
            }
            guard let space = line.lastIndex(of: " ") else { problems.append("no value: \(line)"); continue }
            let series = String(line[..<space])
            guard let value = Double(line[line.index(after: space)...]) else { problems.append("not a number: \(line)"); continue }
            let name = String(series.prefix { $0 != "{" })
            var family = name
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && types[String(name.dropLast(suffix.count))] == "histogram" {
                family = String(name.dropLast(suffix.count))
            }
            guard types[family] != nil, helped.contains(family) else { problems.append("no HELP/TYPE before \(series)"); continue }
            if name.hasSuffix("_bucket") {
                let labels = series.replacingOccurrences(of: #",?le="[^"]*""#, with: "", options: .regularExpression)
                if value < lastBucket[labels, default: 0] { problems.append("bucket not cumulative: \(line)") }
                lastBucket[labels] = value
                if series.contains("le=\"+Inf\"") { infBucket[labels.replacingOccurrences(of: "_bucket", with: "_count")] = value }
            }
            if name.hasSuffix("_count"), types[family] == "histogram", let inf = infBucket[series], inf != value {
                problems.append("\(series) is \(value) but its +Inf bucket \(inf)")
            }
        }
        return problems
    }
}
