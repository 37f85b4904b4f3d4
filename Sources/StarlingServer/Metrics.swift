// Metrics: one loop's figures — plain integers and fixed-bucket histograms touched only on
// that loop's thread (no lock, no atomic on the hot path) — summed over every loop at
// scrape time (`+`) and rendered in the Prometheus text format (`render(loops:)`,
// MetricsText).

import StarlingHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The route a response is counted under (bounded: one label value per route, never a
/// channel name or a path).
public enum MetricRoute: String, CaseIterable, Sendable {
    case publish, publishMany = "publish_many", subscribe, channelInfo = "channel_info", cancel
    case health, metrics, client, other

    /// Read from the path's bytes (every publish passes here), compared in place.
    static func of(_ request: Request) -> MetricRoute {
        let method = request.method
        return request.withPath { u in
            func has(_ word: StaticString, at k: Int) -> Bool {
                k >= 0 && k + word.utf8CodeUnitCount <= u.count
                    && memcmp(u.baseAddress! + k, word.utf8Start, word.utf8CodeUnitCount) == 0
            }
            func isPath(_ word: StaticString) -> Bool { u.count == word.utf8CodeUnitCount && has(word, at: 0) }
            if has("/v1/channels/", at: 0) {
                if u.count > 13 + 7, has("/events", at: u.count - 7) { return method == "POST" ? .publish : .subscribe }
                if has("/cancel", at: u.count - 7) { return .cancel }
                return .channelInfo
            }
            if isPath("/v1/events") { return method == "POST" ? .publishMany : .subscribe }
            if isPath("/healthz") || isPath("/readyz") { return .health }
            if isPath("/metrics") { return .metrics }
            if isPath("/starling.js") || isPath("/demo") || isPath("/") { return .client }
            return .other
        }
    }

    /// Position in `allCases`, by a switch rather than a dictionary lookup per request.
    var ordinal: Int {
        switch self {
        case .publish: return 0
        case .publishMany: return 1
        case .subscribe: return 2
        case .channelInfo: return 3
        case .cancel: return 4
        case .health: return 5
        case .metrics: return 6
        case .client: return 7
        case .other: return 8
        }
    }

    static let index: [MetricRoute: Int] = Dictionary(uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })
}

struct Metrics: Sendable {
    var eventsPublished = 0
    var publishRequests = 0
    var eventsDelivered = 0
    var eventsReplayed = 0
    var conflatedDrops = 0
    /// Token events folded into a merged one (slow queues and `?merge=1` replays).
    var mergedEvents = 0
    var slowConsumerDisconnects = 0
    var shedForGlobalCap = 0
    var gapsReported = 0
    var cancels = 0
    var streamsStopped = 0
    var subscribers = 0
    var authRefusals401 = 0
    var authRefusals403 = 0
    /// [route][status class 1xx…5xx]
    var responses = Array(repeating: Array(repeating: 0, count: 5), count: MetricRoute.allCases.count)
    var requestDuration = Array(repeating: Histogram(bounds: Histogram.latencyBounds), count: MetricRoute.allCases.count)
    var publishToWrite = Histogram(bounds: Histogram.latencyBounds)
    var streamDuration = Histogram(bounds: Histogram.streamBounds)
    /// Figures read off the loop and its store at scrape time.
    var connections = 0
    var refusedConnections = 0
    var queuedBytes = 0
    /// Channels the memory engine holds (its partition on this loop); nil with Redis.
    var channels: Int?
    var storeReady = 0
    var redisReconnects = 0
    var redisCommandErrors = 0
    var redisAskRedirects = 0
    var redisMovedRedirects = 0

    // Working state of this loop, not figures (never summed):
    /// Store times (wall ms) of events fanned out this loop turn; observed once written.
    var awaitingWrite: [UInt64] = []
    /// Auth-refusal log lines allowed per second on this loop.
    var refusalLog = LogBudget(perSecond: 20)

    mutating func countResponse(_ route: MetricRoute, status: Int, seconds: Double?) {
        let r = route.ordinal
        responses[r][min(4, max(0, status / 100 - 1))] += 1
        if let seconds { requestDuration[r].observe(seconds) }
    }

    /// The loop flushed its writes: every event fanned out since the last flush is written.
    mutating func writesFlushed(nowWallNs: UInt64) {
        for storedMs in awaitingWrite {
            let origin = storedMs &* 1_000_000
            publishToWrite.observe(nowWallNs > origin ? Double(nowWallNs - origin) / 1e9 : 0)
        }
        awaitingWrite.removeAll(keepingCapacity: true)
    }

    /// The sum of two loops' figures (the store is ready when every loop's is).
    static func + (a: Metrics, b: Metrics) -> Metrics {
        var m = a
        m.eventsPublished += b.eventsPublished
        m.publishRequests += b.publishRequests
        m.eventsDelivered += b.eventsDelivered
        m.eventsReplayed += b.eventsReplayed
        m.conflatedDrops += b.conflatedDrops
        m.mergedEvents += b.mergedEvents
        m.slowConsumerDisconnects += b.slowConsumerDisconnects
        m.shedForGlobalCap += b.shedForGlobalCap
        m.gapsReported += b.gapsReported
        m.cancels += b.cancels
        m.streamsStopped += b.streamsStopped
        m.subscribers += b.subscribers
        m.authRefusals401 += b.authRefusals401
        m.authRefusals403 += b.authRefusals403
        for r in m.responses.indices {
            for k in 0..<5 { m.responses[r][k] += b.responses[r][k] }
            m.requestDuration[r].merge(b.requestDuration[r])
        }
        m.publishToWrite.merge(b.publishToWrite)
        m.streamDuration.merge(b.streamDuration)
        m.connections += b.connections
        m.refusedConnections += b.refusedConnections
        m.queuedBytes += b.queuedBytes
        if let c = b.channels { m.channels = (m.channels ?? 0) + c }
        m.storeReady = min(m.storeReady, b.storeReady)
        m.redisReconnects += b.redisReconnects
        m.redisCommandErrors += b.redisCommandErrors
        m.redisAskRedirects += b.redisAskRedirects
        m.redisMovedRedirects += b.redisMovedRedirects
        return m
    }

    /// The whole process, from each loop's figures in loop order.
    static func render(loops: [Metrics], process: ProcessStats? = ProcessStats.read()) -> String {
        guard let first = loops.first else { return "" }
        var out = MetricsText.render(loops.dropFirst().reduce(first, +), process: process)
        out += "# HELP starling_loop_connections Open client connections per event loop.\n"
        out += "# TYPE starling_loop_connections gauge\n"
        for (k, m) in loops.enumerated() { out += "starling_loop_connections{loop=\"\(k)\"} \(m.connections)\n" }
        return out
    }
}
