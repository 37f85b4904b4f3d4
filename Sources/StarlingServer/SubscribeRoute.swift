// GET /v1/channels/{ch}/events: an SSE stream from the resume point (Last-Event-ID
// header, else ?lastEventId=), with a starling.gap notice when history was lost, and
// 204 for a completed channel with nothing left to send.
import StarlingCore
import StarlingHTTP
import StarlingStore

extension Broker {
    static let sseHeaders: [(String, String)] = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache, no-transform"),
        ("X-Accel-Buffering", "no"),
    ]

    func resumePoint(_ request: Request) throws -> ResumePoint {
        guard let text = request.header("last-event-id") ?? request.queryValue("lastEventId") else { return .live }
        guard let point = ResumePoint(header: text) else {
            throw BrokerError(.badRequest, "bad_last_event_id", "Last-Event-ID must be an event ID like 1700000000000-0, or earliest")
        }
        return point
    }

    func subscribe(_ channel: String, _ request: Request, _ connection: Connection) {
        let resume: ResumePoint
        do { resume = try resumePoint(request) } catch let e as BrokerError {
            return respond(request, connection, e)
        } catch { return }
        let subscriber = Subscriber(broker: self, connection: connection, channel: channel, resume: resume)
        add(subscriber)  // before the read, so no live event can slip between the two
        store.read(channel, from: resume, limit: config.replayPageSize) { [self] result in
            switch result {
            case .failure(let e):
                remove(subscriber)
                respond(request, connection, e)
            case .success(let page):
                if page.finalID != nil, page.events.isEmpty {
                    remove(subscriber)
                    return respond(request, connection, Response(status: 204))
                }
                startStream(subscriber, request, page)
            }
        }
    }

    private func startStream(_ subscriber: Subscriber, _ request: Request, _ page: ReadResult) {
        let connection = subscriber.connection
        connection.owner = subscriber
        connection.startStream(to: request, head: Response(status: 200, headers: Self.sseHeaders + cors.headers(for: request)),
                               opening: SharedBytes(SSEEncoder.opening(retryMs: config.retryMs)),
                               capacity: config.clientBufferBytes, heartbeat: heartbeat,
                               heartbeatMs: config.heartbeatMs, delegate: subscriber)
        if let gap = page.gap {
            metrics.gapsReported += 1
            _ = connection.send(SharedBytes(Self.gapEvent(channel: subscriber.channel, gap)))
        }
        subscriber.accept(page)
    }

    static func gapEvent(channel: String, _ gap: Gap) -> [UInt8] {
        let from = gap.resumedFrom.map { "\"\($0)\"" } ?? "null"
        let data = "{\"channel\":\(JSONWriter.quoted(channel)),\"requested\":\"\(gap.requested)\",\"resumed_from\":\(from)}"
        return SSEEncoder.event(id: nil, name: "starling.gap", data: data)
    }
}
