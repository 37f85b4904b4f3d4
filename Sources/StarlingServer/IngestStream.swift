// IngestStream: a publish body read as it arrives (SPEC §4). NDJSON lines and SSE
// events are stored the moment their line ends, so one request can carry a whole
// generation while subscribers already see its first tokens. A bad line answers a JSON
// error naming it and closes the request: lines before it stay published, nothing after
// it is applied. The answer `{"count","first","last"}` comes when the body ends.
import StarlingAuth
import StarlingCore
import StarlingHTTP

final class IngestStream: BodyStream {
    enum Format { case ndjson, eventStream }

    private unowned(unsafe) let broker: Broker
    private let request: Request
    private let connection: Connection
    /// The route's channel; nil on /v1/events, where each object names its own.
    private let channel: String?
    private let format: Format
    /// Checked per event on /v1/events, where channels come from the body.
    private let grant: Grant
    private var line: [UInt8] = []
    private var lineNumber = 0
    private var sse = SSEParser()
    /// Bytes of an unfinished UTF-8 character at the end of the last chunk.
    private var utf8Carry: [UInt8] = []
    private var inFlight = 0
    private var ended = false
    private var answered = false
    private var tally = PublishTally()

    init(broker: Broker, request: Request, connection: Connection, channel: String?, grant: Grant, format: Format) {
        self.grant = grant
        self.broker = broker
        self.request = request
        self.connection = connection
        self.channel = channel
        self.format = format
    }

    private var lineLimit: Int { broker.config.maxEventBytes + 4096 }

    func receive(_ bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        switch format {
        case .ndjson: receiveLines(bytes)
        case .eventStream: receiveEvents(bytes)
        }
    }

    func end() {
        guard !answered else { return }
        ended = true
        switch format {
        case .ndjson:
            if !line.isEmpty { var drafts: [EventDraft] = []; if takeLine(into: &drafts) { publish(drafts) } else { return } }
        case .eventStream:
            if !utf8Carry.isEmpty { return fail(BrokerError(.badRequest, "bad_utf8", "the body ends inside a UTF-8 character")) }
            publish(drafts(from: sse.feed([0x0A, 0x0A])))  // an event without its blank line still counts
        }
        finishIfDone()
    }

    // MARK: NDJSON

    private func receiveLines(_ bytes: UnsafeRawBufferPointer) {
        var drafts: [EventDraft] = []
        var start = 0
        while start < bytes.count {
            guard let nl = bytes[start...].firstIndex(of: 0x0A) else {
                line.append(contentsOf: bytes[start...])
                if line.count > lineLimit {
                    publish(drafts)
                    return fail(BrokerError(.tooLarge, "event_too_large", "line \(lineNumber + 1): longer than \(lineLimit) bytes"))
                }
                break
            }
            line.append(contentsOf: bytes[start..<nl])
            start = nl + 1
            guard takeLine(into: &drafts) else { return }
        }
        publish(drafts)
    }

    /// Parses the buffered line; on error publishes what came before it, then fails.
    private func takeLine(into drafts: inout [EventDraft]) -> Bool {
        lineNumber += 1
        defer { line.removeAll(keepingCapacity: true) }
        do {
            // A long-lived publish may not outlive its token: lines read after it expired
            // are refused; those before stay stored.
            if grant.expiresAt != nil, grant.isExpired(nowSeconds: Authorizer.nowSeconds()) {
                throw BrokerError(.unauthorized, "unauthorized", "line \(lineNumber): the token expired during the publish")
            }
            if let d = try PublishBody.parseLine(line[...], line: lineNumber, limits: broker.publishLimits,
                                                 channelKey: channel == nil) {
                if let ch = d.channel {
                    do { try grant.check(.publish, channels: [ch]) } catch {
                        let e = error
                        throw BrokerError(e.kind, e.code, "line \(lineNumber): \(e.message)")
                    }
                }
                drafts.append(d)
            }
            return true
        } catch let e as BrokerError {
            publish(drafts)
            drafts = []
            fail(e)
            return false
        } catch {
            return false
        }
    }

    // MARK: SSE

    private func receiveEvents(_ bytes: UnsafeRawBufferPointer) {
        var chunk = utf8Carry + Array(bytes)
        // Hold back an unfinished multi-byte character for the next chunk.
        let complete = Self.completeUTF8Prefix(chunk)
        utf8Carry = Array(chunk[complete...])
        chunk.removeSubrange(complete...)
        if let bad = UTF8Check.firstInvalidOffset(chunk) {
            return fail(BrokerError(.badRequest, "bad_utf8", "the stream is not valid UTF-8 (byte \(bad) of a chunk)"))
        }
        publish(drafts(from: sse.feed(chunk)))
    }

    private func drafts(from messages: [SSEMessage]) -> [EventDraft] {
        var out: [EventDraft] = []
        for m in messages {
            lineNumber += 1
            let d = EventDraft(name: m.event, data: .text(m.data))
            do {
                _ = try PublishBody.draft(from: .object([("event", .string(m.event)), ("data", .string(m.data))]),
                                          limits: broker.publishLimits, channelKey: false, place: "event \(lineNumber)")
                out.append(d)
            } catch let e as BrokerError {
                publish(out)
                fail(e)
                return []
            } catch {
                return []
            }
        }
        return out
    }

    /// Length of the longest prefix that does not end inside a UTF-8 character.
    static func completeUTF8Prefix(_ b: [UInt8]) -> Int {
        var i = b.count
        var back = 0
        while i > 0, back < 4 {
            let c = b[i - 1]
            if c & 0xC0 != 0x80 {  // a lead byte or ASCII
                let need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1
                return back + 1 >= need ? b.count : i - 1
            }
            i -= 1
            back += 1
        }
        return b.count
    }

    // MARK: storing and answering

    private func publish(_ drafts: [EventDraft]) {
        guard !drafts.isEmpty else { return }
        var order: [String] = []
        var groups: [String: [EventDraft]] = [:]
        for d in drafts {
            let ch = channel ?? d.channel!
            if groups[ch] == nil { order.append(ch) }
            groups[ch, default: []].append(d)
        }
        for ch in order {
            inFlight += 1
            let batch = groups[ch]!
            broker.append(batch, channel: ch) { [self] t in
                if let failure = t.failure, let k = failure.eventIndex, k > 0, k < batch.count, !answered {
                    // The store judges a batch whole; a stream is judged event by event, so
                    // the events before the refused one are stored, then the refusal answered.
                    return broker.append(Array(batch[..<k]), channel: ch) { [self] before in
                        inFlight -= 1
                        tally.merge(before)
                        fail(before.failure ?? failure)
                    }
                }
                inFlight -= 1
                if let failure = t.failure { return fail(failure) }
                tally.merge(t)
                finishIfDone()
            }
        }
    }

    private func finishIfDone() {
        guard ended, inFlight == 0, !answered else { return }
        answered = true
        broker.respond(request, connection, .json(200, tally.answer(perChannel: channel == nil)))
    }

    private func fail(_ error: BrokerError) {
        guard !answered else { return }
        answered = true
        var e = error
        e.message += "; \(tally.count) event(s) before it were published"
        var r = e.httpError.response
        broker.answered(request, status: r.status, bytes: r.body.count, error: e)
        r.headers += broker.cors.headers(for: request)
        connection.respond(to: request, r, close: !ended)
    }
}
