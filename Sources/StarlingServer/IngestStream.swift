// IngestStream: a publish body read as it arrives (SPEC §4). NDJSON lines and SSE
// events are stored the moment their line ends, so one request can carry a whole
// generation while subscribers already see its first tokens. A refused line (400, 401,
// 409, 413) is answered at once, as soon as the lines before it are stored, with a JSON
// error naming it, and the connection closes after the answer: lines before it stay
// published, nothing after it is applied. The answer `{"count","first","last"}` comes
// when the body ends.
//
// Lifecycle: while open, the stream watches its channels like a subscriber (Broker's
// `ingests`), so a Stop or an abandonment on any loop or node answers it 409 at once
// (`channel_cancelled`, `channel_abandoned`) and closes its connection; and it holds the
// leases of its channels (renewed every third of the lease) until its body ends or its
// connection closes.
import StarlingAuth
import StarlingCore
import StarlingHTTP

final class IngestStream: BodyStream, StreamDelegate {
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
    /// The first refusal; answered once the appends in flight before it are done.
    private var refusal: BrokerError?
    private var answered = false
    private var tally = PublishTally()
    /// `Starling-Lease`: the lease every event of this body carries (unless it names its own).
    private let leaseMs: UInt64?
    /// `?final_event=NAME` (SSE bodies): the event of that name is final.
    private let finalEvent: String?
    /// Channels whose end this stream watches (its route's, or each one a line named).
    private var watched: [String] = []
    /// Channels this stream sent a leased event to, and how often it renews them.
    private var leased: [String] = []
    private var holdEveryMs: UInt64?
    private var lastHoldMs: UInt64 = 0
    private var detached = false

    init(broker: Broker, request: Request, connection: Connection, channel: String?, grant: Grant, format: Format,
         leaseMs: UInt64?, finalEvent: String?) {
        self.grant = grant
        self.broker = broker
        self.request = request
        self.connection = connection
        self.channel = channel
        self.format = format
        self.leaseMs = leaseMs
        self.finalEvent = finalEvent
    }

    /// Joins the fan-out of its channel and learns when its connection closes.
    func start() {
        connection.streamDelegate = self
        if let channel { watch(channel) }
    }

    private var lineLimit: Int { broker.config.maxEventBytes + 4096 }

    func receive(_ bytes: UnsafeRawBufferPointer) {
        guard refusal == nil, !answered else { return }
        switch format {
        case .ndjson: receiveLines(bytes)
        case .eventStream: receiveEvents(bytes)
        }
    }

    func end() {
        guard refusal == nil, !answered else { return }
        ended = true
        stopHolding()  // the request is complete: it holds nothing any more
        switch format {
        case .ndjson:
            if !line.isEmpty { var drafts: [EventDraft] = []; if takeLine(into: &drafts) { publish(drafts) } else { return } }
        case .eventStream:
            if !utf8Carry.isEmpty { return fail(BrokerError(.badRequest, "bad_utf8", "the body ends inside a UTF-8 character")) }
            publish(drafts(from: sse.feed([0x0A, 0x0A])))  // an event without its blank line still counts
        }
        answerIfDone()
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
            if var d = try PublishBody.parseLine(line[...], line: lineNumber, limits: broker.publishLimits,
                                                 channelKey: channel == nil) {
                if d.leaseMs == nil { d.leaseMs = leaseMs }
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
            let d = EventDraft(name: m.event, data: .text(m.data), final: m.event == finalEvent, leaseMs: leaseMs)
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
            if channel == nil, !watched.contains(ch) { watch(ch) }
            if let ms = batch.compactMap(\.leaseMs).min() { hold(ch, leaseMs: ms) }
            broker.append(batch, channel: ch) { [self] t in
                if let failure = t.failure, let k = failure.eventIndex, k > 0, k < batch.count, refusal == nil {
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
                answerIfDone()
            }
        }
    }

    /// The linger after refusing a body still open (the timer wheel adds up to 100 ms).
    static let refusalLingerMs: UInt64 = 200

    /// Refuses the rest of the body: nothing more is read or stored; the answer goes out as
    /// soon as the appends already in flight are done (so its count is exact).
    private func fail(_ error: BrokerError) {
        // The first refusal is the one answered; a later one (another batch in flight that
        // the store refused too) must still let the answer go once nothing is in flight.
        if refusal == nil, !answered {
            refusal = error
            stopHolding()
        }
        answerIfDone()
    }

    private func answerIfDone() {
        guard !answered, inFlight == 0 else { return }
        if var e = refusal {
            answered = true
            e.message += "; \(tally.count) event(s) before it were published"
            var r = e.httpError.response
            broker.answered(request, status: r.status, bytes: r.body.count, error: e)
            r.headers += broker.cors.headers(for: request)
            // Closed after the answer while the body is still coming: the worker's next
            // write finds the connection gone, and nothing after the refusal is read. The
            // linger after it is short: the answer has left by then (a worker reading its
            // response has it), and a worker that only writes learns of it from the close.
            if !ended { connection.lingerMs = Self.refusalLingerMs }
            connection.respond(to: request, r, close: !ended)
        } else if ended {
            answered = true
            broker.respond(request, connection, .json(200, tally.answer(perChannel: channel == nil)))
        } else {
            return
        }
        detach()
    }

    // MARK: lifecycle

    /// A final event of a watched channel: a Stop or an abandonment ends this request with
    /// its 409. (A publisher's own final event is refused line by line by the store.)
    func channelEnded(by event: StoredEvent) {
        let state = ChannelState(finalEventNamed: event.name)
        guard state == .cancelled || state == .abandoned, refusal == nil, !answered else { return }
        broker.metrics.streamsStopped += 1
        broker.logger.info("streaming publish to \(event.channel) answered 409: the channel was \(state.rawValue)")
        fail(state.refusal(channel: event.channel))
    }

    private func watch(_ ch: String) {
        watched.append(ch)
        broker.watchEnd(of: ch, for: self)
    }

    /// This stream sent `ch` an event with a lease: it renews the lease while it is open.
    private func hold(_ ch: String, leaseMs ms: UInt64) {
        guard !ended, refusal == nil else { return }
        if !leased.contains(ch) { leased.append(ch) }
        let every = max(100, ms / 3)
        if holdEveryMs.map({ every < $0 }) ?? true { holdEveryMs = every }
        if lastHoldMs == 0 { lastHoldMs = broker.http.nowMs }
        broker.leaseHolders[ObjectIdentifier(self)] = self
    }

    func holdLeaseIfDue(nowMs: UInt64) {
        guard let every = holdEveryMs, nowMs >= lastHoldMs + every else { return }
        lastHoldMs = nowMs
        for ch in leased { broker.store.holdLease(ch) }
    }

    private func stopHolding() {
        holdEveryMs = nil
        broker.leaseHolders[ObjectIdentifier(self)] = nil
    }

    /// Leaves the fan-out and the lease holders: the request is answered or its connection gone.
    private func detach() {
        guard !detached else { return }
        detached = true
        stopHolding()
        for ch in watched { broker.unwatchEnd(of: ch, for: self) }
        watched = []
        if connection.streamDelegate === self { connection.streamDelegate = nil }
    }

    func streamHasRoom(_ connection: Connection) {}

    /// The worker's connection closed (it died, or gave up): its leases run out from here.
    func streamDidClose(_ connection: Connection) {
        answered = true
        detach()
    }
}
