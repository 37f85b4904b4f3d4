// LoadReport: the outcome of one run, as JSON (--json) and as a short human summary.
// Latencies are microseconds; "delivered" counts events handed to healthy subscribers.
import Foundation

public struct LatencySummary: Codable, Sendable {
    public var count: UInt64 = 0
    public var p50Us: Double = 0
    public var p90Us: Double = 0
    public var p99Us: Double = 0
    public var p999Us: Double = 0
    public var maxUs: Double = 0
}

public struct ServerFigures: Codable, Sendable {
    public var pid: Int32
    /// Server CPU seconds over the measured phase (publishing + drain, replay, or hold).
    public var cpuSeconds: Double
    /// Server CPU use over the measured phase, in percent of one core.
    public var cpuPercent: Double
    /// Delivered events per server CPU-second: the fan-out cost figure of SPEC §9.
    public var eventsPerCPUSecond: Double?
    public var rssBeforeBytes: Int
    public var rssConnectedBytes: Int
    public var rssEndBytes: Int
    /// (RSS with subscribers connected − RSS before) / subscribers.
    public var rssPerConnectionBytes: Double?
}

public struct LoadReport: Codable, Sendable {
    public var scenario: String
    public var target: String
    public var subscribers: Int
    public var slowSubscribers: Int
    public var channels: Int
    public var publishers: Int
    public var payloadBytes: Int
    public var requestedRate: Double?
    public var connected = 0
    public var connectErrors = 0
    public var disconnects = 0
    public var slowDisconnects = 0
    public var published = 0
    public var publishErrors = 0
    public var publishSeconds = 0.0
    public var publishPerSecond = 0.0
    public var delivered = 0
    public var deliverySeconds = 0.0
    public var deliveredPerSecond = 0.0
    public var latency = LatencySummary()
    public var loss = 0
    public var duplicates = 0
    public var reordered = 0
    public var foreignEvents = 0
    public var heartbeats = 0
    public var server: ServerFigures?
    public var errors: [String] = []

    /// Loss, duplicates and reordering must all be zero (SPEC §8).
    public var isCorrect: Bool { loss == 0 && duplicates == 0 && reordered == 0 }

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    public var summary: String {
        var s = "starling-load \(scenario) against \(target): \(subscribers) subscribers"
        if slowSubscribers > 0 { s += " (\(slowSubscribers) slow)" }
        s += " on \(channels) channel(s), \(publishers) publisher(s), \(payloadBytes) B payload\n"
        s += "  connected     \(connected)  connect errors \(connectErrors)  disconnects \(disconnects)"
        if slowSubscribers > 0 { s += "  slow disconnected \(slowDisconnects)" }
        s += "\n"
        if published > 0 || delivered > 0 {
            s += "  published     \(published) in \(fmt(publishSeconds)) s = \(fmt(publishPerSecond))/s  errors \(publishErrors)\n"
            s += "  delivered     \(delivered) in \(fmt(deliverySeconds)) s = \(fmt(deliveredPerSecond))/s\n"
        }
        if latency.count > 0 {
            s += "  latency (ms)  p50 \(ms(latency.p50Us))  p90 \(ms(latency.p90Us))  p99 \(ms(latency.p99Us))"
            s += "  p99.9 \(ms(latency.p999Us))  max \(ms(latency.maxUs))\n"
        }
        s += "  correctness   loss \(loss)  duplicates \(duplicates)  reordered \(reordered)"
        if foreignEvents > 0 { s += "  other events \(foreignEvents)" }
        if heartbeats > 0 { s += "  heartbeats \(heartbeats)" }
        s += "\n"
        if let sv = server {
            s += "  server pid \(sv.pid): cpu \(fmt(sv.cpuSeconds)) s (\(fmt(sv.cpuPercent))% of a core)"
            if let e = sv.eventsPerCPUSecond { s += ", \(fmt(e)) events/cpu-s" }
            s += ", rss \(sv.rssEndBytes / 1024) KiB"
            if let per = sv.rssPerConnectionBytes { s += ", \(fmt(per)) B/connection" }
            s += "\n"
        }
        for e in errors.prefix(5) { s += "  error: \(e)\n" }
        s += isCorrect ? "  OK\n" : "  FAILED: events lost, duplicated or reordered\n"
        return s
    }

    private func fmt(_ v: Double) -> String { String(format: v >= 100 ? "%.0f" : "%.2f", v) }
    private func ms(_ us: Double) -> String { String(format: "%.2f", us / 1000) }
}
