// GET /v1/channels/{ch}/events and GET /v1/events?channel=…: an SSE stream from the
// resume point (Last-Event-ID header, else ?lastEventId=), a starling.gap notice when
// history was lost, and 204 when every channel is complete with nothing left to send.
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingStore

extension Broker {
    static let sseHeaders: [(String, String)] = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache, no-transform"),
        ("X-Accel-Buffering", "no"),
    ]
    static let maxMultiplexChannels = 64

    /// The channels of a multiplexed subscription: 1–64 distinct valid names.
    func multiplexChannels(_ request: Request) throws -> [String] {
        var channels: [String] = []
        for c in request.queryValues("channel") where !channels.contains(c) {
            guard Names.isValidChannel(c) else {
                throw BrokerError(.badRequest, "bad_channel", "channel names are 1–200 bytes of [A-Za-z0-9._:@-]")
            }
            channels.append(c)
        }
        guard !channels.isEmpty else { throw BrokerError(.badRequest, "bad_channel", "name at least one ?channel=") }
        guard channels.count <= Self.maxMultiplexChannels else {
            throw BrokerError(.badRequest, "too_many_channels", "a stream carries at most \(Self.maxMultiplexChannels) channels")
        }
        return channels
    }

    /// One resume point per channel from the header or query value.
    func resumePoints(_ request: Request, channels: [String], multiplexed: Bool) throws -> [ResumePoint] {
        guard let text = request.header("last-event-id") ?? request.queryValue("lastEventId"), !text.isEmpty else {
            return channels.map { config.subscribeFromStart.admits($0) ? .earliest : .live }
        }
        if multiplexed, text.hasPrefix("m1:") {
            guard let positions = MultiplexCursor.decode(text, channels: channels) else {
                throw BrokerError(.badRequest, "bad_last_event_id", "the cursor is malformed, altered, or for other channels")
            }
            return positions.map { $0.map(ResumePoint.after) ?? .earliest }
        }
        guard let point = ResumePoint(header: text) else {
            throw BrokerError(.badRequest, "bad_last_event_id",
                              multiplexed ? "Last-Event-ID must be a cursor from this stream, or earliest"
                                          : "Last-Event-ID must be an event ID like 1700000000000-0, or earliest")
        }
        if multiplexed, case .after = point {
            throw BrokerError(.badRequest, "bad_last_event_id", "a multiplexed stream resumes from its own cursor, or earliest")
        }
        return Array(repeating: point, count: channels.count)
    }

    /// `?merge=1` (or `true`): replay token runs merged; `0`, `false` or absent: as stored.
    func mergeReplay(_ request: Request) throws -> Bool {
        switch request.queryValue("merge") {
        case nil, "", "0", "false": return false
        case "1", "true": return true
        default: throw BrokerError(.badRequest, "bad_merge", "merge takes 1 (or true) to replay token runs merged, or 0")
        }
    }

    func subscribe(_ channels: [String], multiplexed: Bool, grant: Grant, _ request: Request, _ connection: Connection) throws {
        let resume = try resumePoints(request, channels: channels, multiplexed: multiplexed)
        let subscription = Subscription(broker: self, connection: connection, channels: channels, resume: resume,
                                        multiplexed: multiplexed, grant: grant, mergeReplay: try mergeReplay(request))
        // Legs join the fan-out before the first read, so no live event can slip between.
        for leg in subscription.legs { add(leg) }
        var pages = [ReadResult?](repeating: nil, count: channels.count)
        var waiting = channels.count
        var failed = false
        for (k, leg) in subscription.legs.enumerated() {
            store.read(leg.channel, from: resume[k], limit: config.replayPageSize) { [self] result in
                guard !failed else { return }
                switch result {
                case .failure(let e):
                    failed = true
                    for leg in subscription.legs { remove(leg) }
                    respond(request, connection, e)
                case .success(let page):
                    pages[k] = page
                    waiting -= 1
                    if waiting == 0 { begin(subscription, request, pages.map { $0! }) }
                }
            }
        }
    }

    private func begin(_ subscription: Subscription, _ request: Request, _ pages: [ReadResult]) {
        if pages.allSatisfy({ $0.finalID != nil && $0.events.isEmpty }) {
            for leg in subscription.legs { remove(leg) }
            return respond(request, subscription.connection, Response(status: 204))
        }
        let connection = subscription.connection
        connection.owner = subscription
        if subscription.grant.expiresAt != nil { expiring[ObjectIdentifier(subscription)] = subscription }
        answered(request, status: 200, bytes: 0, stream: true)
        connection.startStream(to: request, head: Response(status: 200, headers: Self.sseHeaders + cors.headers(for: request)),
                               opening: SharedBytes(SSEEncoder.opening(retryMs: config.retryMs)),
                               capacity: config.clientBufferBytes, heartbeat: heartbeat,
                               heartbeatMs: config.heartbeatMs, delegate: subscription)
        for (leg, page) in zip(subscription.legs, pages) where connection.isOpen { leg.start(with: page) }
    }

    static func gapEvent(channel: String, _ gap: Gap) -> [UInt8] {
        let from = gap.resumedFrom.map { "\"\($0)\"" } ?? "null"
        let data = "{\"channel\":\(JSONWriter.quoted(channel)),\"requested\":\"\(gap.requested)\",\"resumed_from\":\(from)}"
        return SSEEncoder.event(id: nil, name: "starling.gap", data: data)
    }
}
