// What the broker tells its operator: every answer counted by route and status class and
// timed; one log line for each decision someone would ask about — an auth refusal (with
// the token's verified `sub`, never the token), a slow consumer cut, a queue shed at the
// global cap — and, with `access_log`, one line per answer. No line or label carries a
// query string, a token or a secret.
import Logging
import StarlingAuth
import StarlingCore
import StarlingHTTP

extension Broker {
    /// Every answer passes here; an SSE stream when it starts (`stream: true`: its access
    /// line is written when it ends, with its bytes and duration). `route`: when the caller
    /// knows it (a publish's answer), the path is not read again.
    func answered(_ request: Request, status: Int, bytes: Int, error: BrokerError? = nil, stream: Bool = false,
                  route known: MetricRoute? = nil) {
        let route = known ?? MetricRoute.of(request)
        let seconds = Double(MonotonicClock.nowNs() &- request.receivedNs) / 1e9
        metrics.countResponse(route, status: status, seconds: seconds)
        if status == 401 || status == 403 { refused(request, route, status, error) }
        if let access = config.accessLog, !stream {
            access.info("access", metadata: accessFields(request, route, status: status, bytes: bytes, seconds: seconds))
        }
    }

    private func refused(_ request: Request, _ route: MetricRoute, _ status: Int, _ error: BrokerError?) {
        if status == 401 { metrics.authRefusals401 += 1 } else { metrics.authRefusals403 += 1 }
        // A flood of bad tokens must not become a flood of lines: a budget per second,
        // and the next line says how many were left out.
        guard let suppressed = metrics.refusalLog.take(nowMs: loop.nowMs) else { return }
        var fields: Logger.Metadata = [
            "event": "auth_refused", "status": .stringConvertible(status), "method": "\(request.method)",
            "route": "\(route.rawValue)", "reason": "\(error?.message ?? "-")",
            "sub": "\(token(request).flatMap { auth.verifiedSubject(of: $0) } ?? "-")",
        ]
        if suppressed > 0 { fields["suppressed_before"] = .stringConvertible(suppressed) }
        logger.notice("auth refused", metadata: fields)
    }

    /// A subscriber whose queue overflowed is being closed.
    func noteSlowConsumer(_ s: Subscription) {
        metrics.slowConsumerDisconnects += 1
        logger.warning("slow consumer disconnected", metadata: subscriberFields(s, event: "slow_consumer_disconnect") + [
            "client_buffer": .stringConvertible(config.clientBufferBytes),
        ])
    }

    /// A connection is being shed to bring all queues under the global cap.
    func noteShed(_ c: Connection, totalQueued: Int) {
        metrics.shedForGlobalCap += 1
        var fields: Logger.Metadata = ["event": "shed_global_cap", "queued_bytes": .stringConvertible(c.queuedBytes),
                                       "total_queued_bytes": .stringConvertible(totalQueued),
                                       "max_queued_bytes": .stringConvertible(config.maxQueuedBytes)]
        if let s = c.owner as? Subscription { fields = subscriberFields(s, event: "shed_global_cap") + fields }
        logger.warning("subscriber shed at the global queue cap", metadata: fields)
    }

    /// An SSE stream ended (client left, cut, drained or complete).
    func streamEnded(_ s: Subscription) {
        let seconds = Double(MonotonicClock.nowNs() &- s.startedNs) / 1e9
        metrics.streamDuration.observe(seconds)
        guard let access = config.accessLog else { return }
        var fields = accessFields(nil, .subscribe, status: 200, bytes: s.bytesQueued, seconds: seconds)
        fields["method"] = "GET"
        fields["channel"] = "\(s.channels.joined(separator: ","))"
        fields["stream"] = "true"
        access.info("access", metadata: fields)
    }

    // MARK: fields

    private func subscriberFields(_ s: Subscription, event: String) -> Logger.Metadata {
        [
            "event": "\(event)", "channel": "\(s.channels.joined(separator: ","))", "sub": "\(s.grant.subject ?? "-")",
            "queued_bytes": .stringConvertible(s.connection.queuedBytes),
            "stream_seconds": .stringConvertible(Self.rounded(Double(MonotonicClock.nowNs() &- s.startedNs) / 1e9)),
        ]
    }

    /// Route, channel, status, bytes, duration; the path's channel only, never the query.
    private func accessFields(_ request: Request?, _ route: MetricRoute, status: Int, bytes: Int, seconds: Double) -> Logger.Metadata {
        var channel = "-"
        if let request {
            if let r = try? Route.match(request) {
                switch r {
                case .channelEvents(let ch), .channelInfo(let ch): channel = ch
                case .events where request.method == "GET": channel = request.queryValues("channel").filter(Names.isValidChannel).joined(separator: ",")
                default: break
                }
            }
        }
        return [
            "event": "access", "method": "\(request?.method ?? "GET")", "route": "\(route.rawValue)", "channel": "\(channel)",
            "status": .stringConvertible(status), "bytes": .stringConvertible(bytes),
            "duration_ms": .stringConvertible(Self.rounded(seconds * 1000)),
        ]
    }

    static func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}

extension Logger.Metadata {
    static func + (a: Logger.Metadata, b: Logger.Metadata) -> Logger.Metadata { a.merging(b) { $1 } }
}

/// At most `perSecond` lines a second; `take` says how many were refused since the last
/// line it allowed (nil: leave this one out).
struct LogBudget: Sendable {
    let perSecond: Int
    private var windowStartMs: UInt64 = 0
    private var used = 0
    private var suppressed = 0

    init(perSecond: Int) { self.perSecond = perSecond }

    mutating func take(nowMs: UInt64) -> Int? {
        if nowMs &- windowStartMs >= 1000 { windowStartMs = nowMs; used = 0 }
        guard used < perSecond else { suppressed += 1; return nil }
        used += 1
        defer { suppressed = 0 }
        return suppressed
    }
}
