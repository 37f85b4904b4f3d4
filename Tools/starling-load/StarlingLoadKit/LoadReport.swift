// LoadReport: the outcome of one run, as JSON (--json) and as a short human summary, and
// its verdict: a run that lost, duplicated or reordered events, or that measured nothing
// (no subscriber connected, a publish refused, nothing published or delivered), fails.
// Latencies are microseconds; "delivered" counts events handed to healthy subscribers.
import Foundation
import Histogram

public struct LatencySummary: Codable, Sendable {
    public var count: UInt64 = 0
    public var p50Us: Double = 0
    public var p90Us: Double = 0
    public var p99Us: Double = 0
    public var p999Us: Double = 0
    public var maxUs: Double = 0

    public init() {}

    init(_ h: Histogram<UInt64>) {
        func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }
        count = h.totalCount
        p50Us = us(h.valueAtPercentile(50))
        p90Us = us(h.valueAtPercentile(90))
        p99Us = us(h.valueAtPercentile(99))
        p999Us = us(h.valueAtPercentile(99.9))
        maxUs = us(h.max)
    }
}

/// The latency histogram every run records into (nanoseconds, up to 120 s, 3 digits).
func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
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
    /// The cores the server and the load tool may run on (what /proc/stat was read for).
    public var cores: [Int]
    /// CPU that other processes used on those cores during the phase, in percent of one
    /// core. More than a few percent: the machine was not quiet and the figures are suspect.
    public var otherCPUPercent: Double
    /// CPU time the hypervisor took from those cores during the phase, percent of one core.
    public var stealPercent: Double
    /// The phase's two samples, so a `--procs` parent can merge the workers' windows.
    public var start: ServerSample
    public var end: ServerSample

    /// Figures over the phase from `start` to `end`; `clientCPUSeconds` is the load tool's
    /// own CPU over the same phase (not "other").
    init(pid: Int32, start: ServerSample, end: ServerSample, rssBefore: Int?, rssConnected: Int?,
         delivered: Int, subscribersConnected: Int, perConnection: Bool, clientCPUSeconds: Double, cores: [Int]) {
        self.pid = pid
        self.start = start
        self.end = end
        self.cores = cores
        cpuSeconds = end.cpuSeconds - start.cpuSeconds
        let wall = Double(end.atNs &- start.atNs) / 1e9
        cpuPercent = wall > 0 ? 100 * cpuSeconds / wall : 0
        eventsPerCPUSecond = cpuSeconds > 0 && delivered > 0 ? Double(delivered) / cpuSeconds : nil
        rssBeforeBytes = rssBefore ?? 0
        rssConnectedBytes = rssConnected ?? end.rssBytes
        rssEndBytes = end.rssBytes
        rssPerConnectionBytes = subscribersConnected > 0 && perConnection
            ? Double(rssConnectedBytes - rssBeforeBytes) / Double(subscribersConnected) : nil
        let busy = end.coresBusySeconds - start.coresBusySeconds
        let others = max(0, busy - cpuSeconds - clientCPUSeconds)
        otherCPUPercent = wall > 0 && !cores.isEmpty ? 100 * others / wall : 0
        stealPercent = wall > 0 ? 100 * (end.coresStealSeconds - start.coresStealSeconds) / wall : 0
    }
}

public struct LoadReport: Codable, Sendable {
    public var scenario: String
    public var target: String
    /// Load-tool processes that made this run (`--procs`).
    public var workers = 1
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
    /// Publishes answered with anything but 2xx, or never answered.
    public var publishErrors = 0
    /// Publisher connections that could not connect or were closed under the run.
    public var publisherFailures = 0
    public var publishSeconds = 0.0
    public var publishPerSecond = 0.0
    public var delivered = 0
    public var deliverySeconds = 0.0
    public var deliveredPerSecond = 0.0
    /// Socket reads of healthy subscribers that carried events, and events per such read:
    /// how many events the server put in each write (its coalescing, seen from outside).
    public var subscriberReads = 0
    public var eventsPerRead = 0.0
    public var latency = LatencySummary()
    /// Publish round trips of the answered-2xx publishes: request queued to answer read.
    public var publishLatency = LatencySummary()
    public var loss = 0
    public var duplicates = 0
    public var reordered = 0
    public var foreignEvents = 0
    public var heartbeats = 0
    /// The load tool's own CPU over the measured phase, summed over its processes, and in
    /// percent of one core: near 100 × workers, the client was the ceiling, not the server.
    public var clientCPUSeconds = 0.0
    public var clientCPUPercent = 0.0
    public var server: ServerFigures?
    public var errors: [String] = []
    /// Why the run cannot stand (empty: it passed); filled by `judge`.
    public var failures: [String] = []
    public var warnings: [String] = []
    /// A worker's latency histogram as [value ns, count] pairs, for its parent to merge.
    public var latencyBuckets: [[UInt64]]?
    public var publishLatencyBuckets: [[UInt64]]?

    init(scenario: String, target: String, subscribers: Int, slowSubscribers: Int, channels: Int,
         publishers: Int, payloadBytes: Int, requestedRate: Double?) {
        self.scenario = scenario
        self.target = target
        self.subscribers = subscribers
        self.slowSubscribers = slowSubscribers
        self.channels = channels
        self.publishers = publishers
        self.payloadBytes = payloadBytes
        self.requestedRate = requestedRate
    }

    /// Loss, duplicates and reordering must all be zero (SPEC §8).
    public var isCorrect: Bool { loss == 0 && duplicates == 0 && reordered == 0 }

    /// Whether the run may stand: correct and measuring something.
    public var passed: Bool { failures.isEmpty }

    /// Fills `failures` and `warnings` from the counts; `extra` are failures found outside
    /// the counts (a worker process that died).
    public mutating func judge(extra: [String] = []) {
        var f: [String] = []
        if !isCorrect { f.append("events lost \(loss), duplicated \(duplicates), reordered \(reordered)") }
        if subscribers > 0, connected == 0 {
            f.append("no subscriber connected: \(connectErrors) of \(subscribers) failed" + firstError { !$0.hasPrefix("publish") })
        }
        if publishErrors > 0 {
            f.append("\(publishErrors) publish(es) answered with a non-2xx status or not at all" + firstError { $0.hasPrefix("publish ") })
        }
        if publisherFailures > 0 {
            f.append("\(publisherFailures) publisher connection(s) failed or were closed" + firstError { $0.hasPrefix("publisher") })
        }
        if scenario != Scenario.idle.rawValue, published == 0 {
            f.append("nothing was published")
        } else if published > 0, delivered == 0, connected > slowSubscribers {
            f.append("\(published) event(s) published and none delivered")
        }
        failures = f + extra
        var w: [String] = []
        if connected > 0, connected < subscribers { w.append("\(subscribers - connected) of \(subscribers) subscribers never connected") }
        if let rate = requestedRate, publishSeconds > 0, publishPerSecond < 0.9 * rate {
            // The client fell behind the rate it was asked for: the server saw a lighter load.
            w.append(String(format: "published %.0f/s of the %.0f/s asked", publishPerSecond, rate))
        }
        warnings = w
    }

    /// " (first: …)" with the first error `matching`; a worker's errors carry a "worker k: " prefix.
    private func firstError(_ matching: (String) -> Bool) -> String {
        func bare(_ e: String) -> String {
            guard e.hasPrefix("worker "), let r = e.range(of: ": ") else { return e }
            return String(e[r.upperBound...])
        }
        return errors.first { matching(bare($0)) }.map { " (first: \($0))" } ?? ""
    }

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    public var summary: String {
        var s = "starling-load \(scenario) against \(target): \(subscribers) subscribers"
        if slowSubscribers > 0 { s += " (\(slowSubscribers) slow)" }
        s += " on \(channels) channel(s), \(publishers) publisher(s), \(payloadBytes) B payload"
        if workers > 1 { s += ", \(workers) processes" }
        s += "\n  connected     \(connected)  connect errors \(connectErrors)  disconnects \(disconnects)"
        if slowSubscribers > 0 { s += "  slow disconnected \(slowDisconnects)" }
        s += "\n"
        if published > 0 || delivered > 0 || publishErrors > 0 {
            s += "  published     \(published) in \(fmt(publishSeconds)) s = \(fmt(publishPerSecond))/s  errors \(publishErrors)\n"
            s += "  delivered     \(delivered) in \(fmt(deliverySeconds)) s = \(fmt(deliveredPerSecond))/s"
            if subscriberReads > 0 { s += "  (\(fmt(eventsPerRead)) per read)" }
            s += "\n"
        }
        if latency.count > 0 {
            s += "  latency (ms)  p50 \(ms(latency.p50Us))  p90 \(ms(latency.p90Us))  p99 \(ms(latency.p99Us))"
            s += "  p99.9 \(ms(latency.p999Us))  max \(ms(latency.maxUs))\n"
        }
        if publishLatency.count > 0 {
            s += "  publish (ms)  p50 \(ms(publishLatency.p50Us))  p90 \(ms(publishLatency.p90Us))  p99 \(ms(publishLatency.p99Us))"
            s += "  p99.9 \(ms(publishLatency.p999Us))  max \(ms(publishLatency.maxUs))  (request to answer)\n"
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
            s += "\n  machine       client cpu \(fmt(clientCPUPercent))% of a core; others on cores "
            s += "\(sv.cores.map(String.init).joined(separator: ",")): \(fmt(sv.otherCPUPercent))%, steal \(fmt(sv.stealPercent))%\n"
        }
        for e in errors.prefix(5) { s += "  error: \(e)\n" }
        for w in warnings { s += "  warning: \(w)\n" }
        if failures.isEmpty { s += "  OK\n" } else { for f in failures { s += "  FAILED: \(f)\n" } }
        return s
    }

    private func fmt(_ v: Double) -> String { String(format: v >= 100 ? "%.0f" : "%.2f", v) }
    private func ms(_ us: Double) -> String { String(format: "%.2f", us / 1000) }
}
