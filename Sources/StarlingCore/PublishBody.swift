// PublishBody: turns a publish request body into checked EventDrafts (SPEC §3, §4).
// A batch is checked whole before anything is stored: one bad element → an error
// naming its index (or line), and nothing from the body is published.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct PublishLimits: Sendable {
    public var maxEventBytes: Int
    public init(maxEventBytes: Int) { self.maxEventBytes = maxEventBytes }
}

public enum PublishBody {
    /// The media types a publish accepts, by their essence (parameters stripped).
    public enum MediaType: Equatable, Sendable {
        case json, ndjson, eventStream, plainText

        /// From the header's bytes: the four exact spellings are compared in place (every
        /// publish asks, twice); anything else takes the String path below.
        public init?(contentType bytes: UnsafeBufferPointer<UInt8>?) {
            guard let b = bytes else { return nil }
            func isText(_ word: StaticString) -> Bool {
                b.count == word.utf8CodeUnitCount && memcmp(b.baseAddress!, word.utf8Start, b.count) == 0
            }
            if isText("application/json") { self = .json; return }
            if isText("application/x-ndjson") { self = .ndjson; return }
            if isText("text/plain") { self = .plainText; return }
            if isText("text/event-stream") { self = .eventStream; return }
            self.init(contentType: String(decoding: b, as: UTF8.self))
        }

        public init?(contentType: String?) {
            guard let ct = contentType else { return nil }
            // The common exact spellings first: no splitting or lowercasing per publish.
            switch ct {
            case "application/json": self = .json; return
            case "application/x-ndjson": self = .ndjson; return
            case "text/plain": self = .plainText; return
            case "text/event-stream": self = .eventStream; return
            default: break
            }
            let essence = ct.split(separator: ";", maxSplits: 1).first.map {
                String($0).trimmingASCIIWhitespace().lowercased()
            } ?? ""
            switch essence {
            case "application/json": self = .json
            case "application/x-ndjson", "application/jsonl", "application/jsonlines": self = .ndjson
            case "text/event-stream": self = .eventStream
            case "text/plain": self = .plainText
            default: return nil
            }
        }
    }

    /// Parses one whole JSON body: an event object or an array of them.
    public static func parseJSON(_ body: [UInt8], limits: PublishLimits, channelKey: Bool) throws -> [EventDraft] {
        // The AI-token shape, one `{"data":…}` object, without a JSON tree (QuickEvent.swift).
        if !channelKey, let d = body.withUnsafeBufferPointer({ QuickEvent.parse($0) }) {
            try check(d, limits: limits, place: "event")
            return [d]
        }
        let value: JSONValue
        do { value = try JSONParser.parse(body) } catch let e as JSONError {
            throw BrokerError(.badRequest, "bad_json", "invalid JSON: \(e)")
        }
        switch value {
        case .array(let items):
            guard !items.isEmpty else { throw BrokerError(.badRequest, "empty_batch", "the array holds no events") }
            return try items.enumerated().map { k, item in
                try draft(from: item, limits: limits, channelKey: channelKey, place: "event [\(k)]")
            }
        case .object:
            return [try draft(from: value, limits: limits, channelKey: channelKey, place: "event")]
        default:
            throw BrokerError(.badRequest, "bad_event", "the body must be an event object or an array of them")
        }
    }

    /// The publish fast lane's reading of a JSON body: the one-object shape QuickEvent reads,
    /// within the limits, or nil (then `parseJSON` reads it, and gives any error).
    public static func quickJSON(_ body: UnsafeRawBufferPointer, limits: PublishLimits) -> [EventDraft]? {
        guard let d = QuickEvent.parse(body.bindMemory(to: UInt8.self)),
              (try? check(d, limits: limits, place: "event")) != nil else { return nil }
        return [d]
    }

    /// The fast lane's reading of a `text/plain` body with no query: `parsePlainText`'s
    /// event, or nil (then `parsePlainText` reads it, and gives any error).
    public static func quickPlainText(_ body: UnsafeRawBufferPointer, limits: PublishLimits) -> [EventDraft]? {
        guard let text = UTF8Text.string(body.bindMemory(to: UInt8.self)) else { return nil }
        let d = EventDraft(data: .text(text))
        guard (try? check(d, limits: limits, place: "event")) != nil else { return nil }
        return [d]
    }

    /// Parses one NDJSON line (1-based `line` for the error message); nil for a blank line.
    public static func parseLine(_ bytes: ArraySlice<UInt8>, line: Int, limits: PublishLimits,
                                 channelKey: Bool) throws -> EventDraft? {
        var slice = bytes
        if slice.last == 0x0D { slice = slice.dropLast() }
        if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        let value: JSONValue
        do { value = try JSONParser.parse(slice) } catch let e as JSONError {
            throw BrokerError(.badRequest, "bad_json", "line \(line): invalid JSON: \(e)")
        }
        return try draft(from: value, limits: limits, channelKey: channelKey, place: "line \(line)")
    }

    /// Parses a whole NDJSON body.
    public static func parseNDJSON(_ body: [UInt8], limits: PublishLimits, channelKey: Bool) throws -> [EventDraft] {
        var drafts: [EventDraft] = []
        var lineNo = 0
        var start = 0
        while start < body.count {
            let end = body[start...].firstIndex(of: 0x0A) ?? body.count
            lineNo += 1
            if let d = try parseLine(body[start..<end], line: lineNo, limits: limits, channelKey: channelKey) {
                drafts.append(d)
            }
            start = end + 1
        }
        guard !drafts.isEmpty else { throw BrokerError(.badRequest, "empty_batch", "the body holds no events") }
        return drafts
    }

    /// `text/plain`: the whole body is the data of one event.
    public static func parsePlainText(_ body: [UInt8], name: String?, conflate: String?, final: Bool,
                                      limits: PublishLimits) throws -> EventDraft {
        if let bad = UTF8Check.firstInvalidOffset(body) {
            throw BrokerError(.badRequest, "bad_utf8", "the body is not valid UTF-8 at byte \(bad)")
        }
        let d = EventDraft(name: name ?? "message", data: .text(String(decoding: body, as: UTF8.self)),
                           conflate: conflate, final: final)
        try check(d, limits: limits, place: "event")
        return d
    }

    static let knownKeys: Set<String> = ["event", "data", "conflate", "final", "producer", "seq", "epoch", "channel", "id", "lease"]

    /// A lease runs from 1 second to a day: shorter would be lost between two checks.
    public static let leaseSeconds = 1.0...86_400.0

    /// A lease in seconds (a JSON number's text, or the `Starling-Lease` header) as
    /// milliseconds; nil unless it is a plain decimal number within `leaseSeconds`.
    public static func leaseMs(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }),
              let seconds = Double(text), leaseSeconds.contains(seconds) else { return nil }
        return UInt64((seconds * 1000).rounded())
    }

    /// One event object → a draft, or an error that names `place`.
    public static func draft(from value: JSONValue, limits: PublishLimits, channelKey: Bool,
                             place: String) throws -> EventDraft {
        guard case .object(let members) = value else {
            throw BrokerError(.badRequest, "bad_event", "\(place): must be a JSON object")
        }
        var d = EventDraft(data: .json("null"))
        var hasData = false
        for (key, v) in members {
            switch key {
            case "event":
                guard case .string(let s) = v else { throw bad(place, "\"event\" must be a string") }
                d.name = s
            case "data":
                hasData = true
                if case .string(let s) = v { d.data = .text(s) } else { d.data = .json(JSONWriter.compact(v)) }
            case "conflate":
                guard case .string(let s) = v, !s.isEmpty, s.utf8.count <= 200 else {
                    throw bad(place, "\"conflate\" must be a string of 1–200 bytes")
                }
                d.conflate = s
            case "final":
                guard case .bool(let b) = v else { throw bad(place, "\"final\" must be true or false") }
                d.final = b
            case "producer":
                guard case .string(let s) = v, !s.isEmpty, s.utf8.count <= 200 else {
                    throw bad(place, "\"producer\" must be a string of 1–200 bytes")
                }
                d.producer = s
            case "seq":
                guard let seq = producerInteger(v) else {
                    throw bad(place, "\"seq\" must be an integer from 0 to \(Int64.max)")
                }
                d.seq = seq
            case "epoch":
                guard let epoch = producerInteger(v) else {
                    throw bad(place, "\"epoch\" must be an integer from 0 to \(Int64.max)")
                }
                d.epoch = epoch
            case "channel":
                guard channelKey else { throw bad(place, "\"channel\" belongs in the URL on this route") }
                guard case .string(let s) = v, Names.isValidChannel(s) else {
                    throw bad(place, "\"channel\" must be 1–200 bytes of [A-Za-z0-9._:@-]")
                }
                d.channel = s
            case "id":
                throw bad(place, "\"id\" is assigned by the broker and cannot be sent")
            case "lease":
                guard case .number(let text) = v, let ms = leaseMs(text) else {
                    throw bad(place, "\"lease\" must be a number of seconds from 1 to 86400")
                }
                d.leaseMs = ms
            default:
                throw bad(place, "unknown field \"\(key)\" (known: event, data, conflate, final, producer, seq, epoch, lease)")
            }
        }
        guard hasData else { throw bad(place, "\"data\" is missing") }
        if channelKey, d.channel == nil { throw bad(place, "\"channel\" is missing") }
        if (d.producer == nil) != (d.seq == nil) { throw bad(place, "\"producer\" and \"seq\" go together") }
        if d.epoch != nil, d.producer == nil { throw bad(place, "\"epoch\" needs \"producer\" and \"seq\"") }
        try check(d, limits: limits, place: place)
        return d
    }

    /// A `seq` or `epoch`: a JSON integer from 0 to 2^63−1, read exactly from its text
    /// (the parser keeps numbers as sent, so 2^53+1 is never rounded). A fraction, an
    /// exponent, a negative value or anything larger is refused.
    static func producerInteger(_ v: JSONValue) -> Int64? {
        guard case .number(let text) = v, let n = Int64(text), n >= 0, !text.hasPrefix("-") else { return nil }
        return n
    }

    static func check(_ d: EventDraft, limits: PublishLimits, place: String) throws {
        // Most events carry the default name, which needs no check (a compare of two small
        // strings' bits, where the check walks the bytes).
        if d.name != "message" {
            guard Names.isValidEventName(d.name) else {
                throw bad(place, "event name must be 1–64 bytes of [A-Za-z0-9._:-]")
            }
            guard !Names.isReserved(d.name) else {
                throw bad(place, "event names starting \"starling.\" are reserved for the broker")
            }
        }
        let size = d.data.byteCount
        guard size <= limits.maxEventBytes else {
            throw BrokerError(.tooLarge, "event_too_large",
                              "\(place): data is \(size) bytes, over the limit of \(limits.maxEventBytes)")
        }
    }

    static func bad(_ place: String, _ message: String) -> BrokerError {
        BrokerError(.badRequest, "bad_event", "\(place): \(message)")
    }
}

extension PublishBody {
    /// `text/event-stream`: each dispatched event becomes one event with its name and data.
    /// `finalEvent` (`?final_event=NAME`) marks the event of that name final.
    public static func parseEventStream(_ body: [UInt8], limits: PublishLimits, finalEvent: String? = nil) throws -> [EventDraft] {
        if let bad = UTF8Check.firstInvalidOffset(body) {
            throw BrokerError(.badRequest, "bad_utf8", "the body is not valid UTF-8 at byte \(bad)")
        }
        var parser = SSEParser()
        var messages = parser.feed(body)
        messages += parser.feed([0x0A, 0x0A])  // a stream that ends without its blank line
        var drafts: [EventDraft] = []
        for (k, m) in messages.enumerated() {
            let d = EventDraft(name: m.event, data: .text(m.data), final: m.event == finalEvent)
            try check(d, limits: limits, place: "event [\(k)]")
            drafts.append(d)
        }
        guard !drafts.isEmpty else { throw BrokerError(.badRequest, "empty_batch", "the stream holds no events") }
        return drafts
    }
}

extension PublishBody {
    public static let maxCancelReasonBytes = 1024

    /// The body of `POST /v1/channels/{ch}/cancel`: empty, or `{"reason": string | null}`.
    public static func cancelReason(_ body: [UInt8]) throws -> String? {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) { return nil }
        let value: JSONValue
        do { value = try JSONParser.parse(body) } catch let e as JSONError {
            throw BrokerError(.badRequest, "bad_json", "invalid JSON: \(e)")
        }
        guard case .object(let members) = value else {
            throw BrokerError(.badRequest, "bad_cancel", "the body must be empty or {\"reason\":\"…\"}")
        }
        var reason: String?
        for (key, v) in members {
            guard key == "reason" else { throw BrokerError(.badRequest, "bad_cancel", "unknown field \"\(key)\" (known: reason)") }
            switch v {
            case .null: reason = nil
            case .string(let s) where s.utf8.count <= maxCancelReasonBytes: reason = s
            default:
                throw BrokerError(.badRequest, "bad_cancel", "\"reason\" must be a string of at most \(maxCancelReasonBytes) bytes, or null")
            }
        }
        return reason
    }
}
