// POST /v1/channels/{ch}/events and POST /v1/events. JSON and text/plain bodies are
// buffered and stored as one batch per channel; NDJSON and SSE bodies are streamed
// (IngestStream): each line or event is stored as soon as it arrives.
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingStore

extension Broker {
    var publishLimits: PublishLimits { PublishLimits(maxEventBytes: config.maxEventBytes) }

    func mediaType(_ request: Request) throws -> PublishBody.MediaType {
        guard let type = Self.mediaType(of: request) else {
            throw BrokerError(.unsupportedMedia, "unsupported_media_type",
                "send application/json, application/x-ndjson, text/event-stream or text/plain (got \(request.contentType ?? "none"))")
        }
        return type
    }

    /// The body's media type, from the header's bytes (nil: none, or not one we take).
    static func mediaType(of request: Request) -> PublishBody.MediaType? {
        request.withHeader("content-type") { PublishBody.MediaType(contentType: $0) }
    }

    /// Streams NDJSON and SSE publish bodies; everything else is buffered.
    public func bodyStream(for request: Request, on connection: Connection) -> BodyStream? {
        // Only NDJSON and SSE bodies stream; decide on the media type before routing.
        guard request.method == "POST", let type = Self.mediaType(of: request),
              type == .ndjson || type == .eventStream, let route = try? Route.match(request) else { return nil }
        let channel: String?
        let grant: Grant
        let leaseMs: UInt64?
        let finalEvent: String?
        do {
            switch route {
            case .channelEvents(let ch): channel = ch; grant = try authorize(request, .publish, [ch])
            case .events: channel = nil; grant = try authenticate(request)
            default: return nil
            }
            leaseMs = try leaseHeader(request)
            finalEvent = try finalEventName(request)
        } catch let e as BrokerError {
            // Refused at the head: answer now, read nothing more of this connection.
            var r = e.httpError.response
            answered(request, status: r.status, bytes: r.body.count, error: e)
            r.headers += cors.headers(for: request)
            connection.respond(to: request, r, close: true)
            return DiscardedBody()
        } catch { return nil }
        let stream: IngestStream
        switch type {
        case .ndjson:
            stream = IngestStream(broker: self, request: request, connection: connection, channel: channel, grant: grant,
                                  format: .ndjson, leaseMs: leaseMs, finalEvent: nil)
        case .eventStream:
            guard channel != nil else { return nil }  // SSE carries no channel per event
            stream = IngestStream(broker: self, request: request, connection: connection, channel: channel, grant: grant,
                                  format: .eventStream, leaseMs: leaseMs, finalEvent: finalEvent)
        default: return nil
        }
        stream.start()
        return stream
    }

    /// `Starling-Lease: <seconds>`: the lease of every event of the body that names none.
    func leaseHeader(_ request: Request) throws -> UInt64? {
        guard let text = request.header("starling-lease") else { return nil }
        guard let ms = PublishBody.leaseMs(text) else {
            throw BrokerError(.badRequest, "bad_lease", "Starling-Lease must be a number of seconds from 1 to 86400")
        }
        return ms
    }

    /// `?final_event=NAME` on a `text/event-stream` body: the event of that name is final.
    func finalEventName(_ request: Request) throws -> String? {
        guard let name = request.queryValue("final_event") else { return nil }
        guard Names.isValidEventName(name), !Names.isReserved(name) else {
            throw BrokerError(.badRequest, "bad_final_event", "final_event must be an event name: 1–64 bytes of [A-Za-z0-9._:-], not starting \"starling.\"")
        }
        return name
    }

    func publish(_ channel: String, _ grant: Grant, _ request: Request, _ connection: Connection) {
        var drafts: [EventDraft]
        do {
            switch try mediaType(request) {
            case .json: drafts = try PublishBody.parseJSON(request.body, limits: publishLimits, channelKey: false)
            case .ndjson: drafts = try PublishBody.parseNDJSON(request.body, limits: publishLimits, channelKey: false)
            case .eventStream:
                drafts = try PublishBody.parseEventStream(request.body, limits: publishLimits, finalEvent: try finalEventName(request))
            case .plainText:
                drafts = [try PublishBody.parsePlainText(request.body, name: request.queryValue("event"),
                                                         conflate: request.queryValue("conflate"),
                                                         final: request.queryValue("final") == "true", limits: publishLimits)]
            }
            if let ms = try leaseHeader(request) {
                for k in drafts.indices where drafts[k].leaseMs == nil { drafts[k].leaseMs = ms }
            }
        } catch let e as BrokerError {
            return respond(request, connection, e)
        } catch {
            return respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
        // The memory engine stores at once, with no closure context made (the common path).
        let now = store.appendNow(drafts, to: channel) { result in
            answer(request, connection, counted(result, channel: channel, perChannel: false))
        }
        if now { return }
        // One closure context for the later answer (not `append`'s two).
        store.append(drafts, to: channel) { [self] result in
            answer(request, connection, counted(result, channel: channel, perChannel: false))
        }
        expediteIfWaiting(connection)
    }

    /// A single-channel publish's answer. The common one (stored, no CORS headers due) is
    /// written from a stack buffer straight into the connection's answers.
    private func answer(_ request: Request, _ connection: Connection, _ tally: PublishTally) {
        if let failure = tally.failure { return respond(request, connection, failure.httpError.response) }
        guard cors.headers(for: request).isEmpty else { return respond(request, connection, .json(200, bytes: tally.answerBytes())) }
        tally.withAnswerBytes { body in
            answered(request, status: 200, bytes: body.count, route: .publish)  // POST /v1/channels/{ch}/events
            connection.respondOK(to: request, json: body)
        }
    }

    /// `POST /v1/events` with a JSON body: objects name their channel; each channel's
    /// events are stored in order as one batch (atomic per channel, not across channels).
    func publishMany(_ grant: Grant, _ request: Request, _ connection: Connection) {
        let drafts: [EventDraft]
        do {
            guard try mediaType(request) == .json else {
                throw BrokerError(.unsupportedMedia, "unsupported_media_type", "POST /v1/events takes application/json or application/x-ndjson")
            }
            drafts = try PublishBody.parseJSON(request.body, limits: publishLimits, channelKey: true)
            var channels: [String] = []
            var seen: Set<String> = []
            for d in drafts where seen.insert(d.channel!).inserted { channels.append(d.channel!) }
            try grant.check(.publish, channels: channels)
        } catch let e as BrokerError {
            return respond(request, connection, e)
        } catch {
            return respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
        var order: [String] = []
        var groups: [String: [EventDraft]] = [:]
        for d in drafts {
            let ch = d.channel!
            if groups[ch] == nil { order.append(ch) }
            groups[ch, default: []].append(d)
        }
        var tally = PublishTally()
        var waiting = order.count
        for ch in order {
            append(groups[ch]!, channel: ch) { [self] t in
                tally.merge(t)
                waiting -= 1
                if waiting == 0 {
                    respond(request, connection, tally.failure.map { $0.httpError.response } ?? .json(200, tally.answer(perChannel: true)))
                }
            }
        }
        expediteIfWaiting(connection)
    }

    /// Stores one channel's batch and counts it (`perChannel`: for a per-channel answer).
    func append(_ drafts: [EventDraft], channel: String, perChannel: Bool = true, done: @escaping (PublishTally) -> Void) {
        store.append(drafts, to: channel) { [self] result in
            done(counted(result, channel: channel, perChannel: perChannel))
        }
    }

    /// An append's result as a tally, counted in the metrics when stored.
    func counted(_ result: Result<AppendResult, BrokerError>, channel: String, perChannel: Bool) -> PublishTally {
        var t = PublishTally(perChannel: perChannel)
        switch result {
        case .failure(let e):
            t.failure = BrokerError(e.kind, e.code, "channel \(channel): \(e.message)", eventIndex: e.eventIndex)
        case .success(let r):
            metrics.publishRequests += 1
            metrics.eventsPublished += r.count
            t.add(r, channel: channel)
        }
        return t
    }
}

/// What a publish stored, for its answer `{"count","first","last"}`.
struct PublishTally {
    var count = 0
    var duplicates = 0
    var first: EventID?
    var last: EventID?
    var failure: BrokerError?
    var channels: [(String, count: Int, first: EventID?, last: EventID?)] = []
    /// Whether `channels` is kept (only `POST /v1/events` answers per channel).
    var perChannel = true

    mutating func add(_ r: AppendResult, channel: String) {
        count += r.count
        duplicates += r.duplicates
        if first == nil { first = r.first }
        if let l = r.last { last = l }
        guard perChannel else { return }
        if let i = channels.firstIndex(where: { $0.0 == channel }) {
            channels[i].count += r.count
            if channels[i].first == nil { channels[i].first = r.first }
            if let l = r.last { channels[i].last = l }
        } else {
            channels.append((channel, r.count, r.first, r.last))
        }
    }

    mutating func merge(_ t: PublishTally) {
        count += t.count
        duplicates += t.duplicates
        if first == nil { first = t.first }
        if t.last != nil { last = t.last }
        if failure == nil { failure = t.failure }
        for c in t.channels { channels.append(c) }
    }

    /// `answer(perChannel: false)` as bytes, written without string interpolation: every
    /// publish to one channel is answered with it.
    func answerBytes() -> [UInt8] { withAnswerBytes { Array($0) } }

    /// Calls `body` with `{"count","first","last"[,"duplicates"]}`, written on the stack.
    func withAnswerBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        // Six numbers of at most 20 digits and 47 bytes of fixed text: under 192 bytes.
        withUnsafeTemporaryAllocation(byteCount: 192, alignment: 1) { buffer in
            var w = ByteWriter(buffer)
            func put(_ id: EventID?) {
                guard let id else { return w.put("null") }
                w.put(byte: 0x22); w.put(decimal: id.ms); w.put(byte: 0x2D); w.put(decimal: id.seq); w.put(byte: 0x22)
            }
            w.put("{\"count\":"); w.put(decimal: UInt64(count))
            w.put(",\"first\":")
            let firstStart = w.count
            put(first)
            let firstEnd = w.count
            w.put(",\"last\":")
            if let first, last == first {
                // One event: the same ID again, copied rather than formatted twice.
                let copy = UnsafeBufferPointer(start: buffer.baseAddress!.advanced(by: firstStart).assumingMemoryBound(to: UInt8.self),
                                               count: firstEnd - firstStart)
                w.put(copy)
            } else {
                put(last)
            }
            if duplicates > 0 { w.put(",\"duplicates\":"); w.put(decimal: UInt64(duplicates)) }
            w.put(byte: 0x7D)
            return body(UnsafeRawBufferPointer(rebasing: buffer[..<w.count]))
        }
    }

    func answer(perChannel: Bool) -> String {
        func id(_ i: EventID?) -> String { i.map { "\"\($0)\"" } ?? "null" }
        var out = "{\"count\":\(count),\"first\":\(id(first)),\"last\":\(id(last))"
        if duplicates > 0 { out += ",\"duplicates\":\(duplicates)" }
        if perChannel {
            out += ",\"channels\":{" + channels.map {
                "\(JSONWriter.quoted($0.0)):{\"count\":\($0.count),\"first\":\(id($0.first)),\"last\":\(id($0.last))}"
            }.joined(separator: ",") + "}"
        }
        return out + "}"
    }
}

/// The body of a request already refused at its head: read and dropped.
final class DiscardedBody: BodyStream {
    func receive(_ bytes: UnsafeRawBufferPointer) {}
    func end() {}
}
