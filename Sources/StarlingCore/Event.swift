// The event model (SPEC §3): what a publisher sends (EventDraft) and what the store
// keeps (StoredEvent). A StoredEvent carries its SSE encoding, made once at store time.
import Synchronization

public enum EventData: Equatable, Sendable {
    /// A JSON string: sent on the wire as its raw text.
    case text(String)
    /// Any other JSON value, kept as compact JSON text.
    case json(String)

    /// The bytes that go after `data:` on the wire.
    public var wireText: String {
        switch self { case .text(let s), .json(let s): return s }
    }

    /// The value as JSON (a string is quoted), for envelopes and notifications.
    public var jsonText: String {
        switch self {
        case .text(let s): return JSONWriter.quoted(s)
        case .json(let s): return s
        }
    }

    /// Size that counts against `--max-event-bytes`.
    public var byteCount: Int { wireText.utf8.count }
}

/// An event as a publisher sends it, checked but not yet stored.
public struct EventDraft: Equatable, Sendable {
    public var name: String
    public var data: EventData
    public var conflate: String?
    public var final: Bool
    public var producer: String?
    public var seq: Int64?
    /// The producer's epoch (absent reads as 0): a higher one starts a new sequence.
    public var epoch: Int64?
    /// Only on `POST /v1/events`, where each object names its channel.
    public var channel: String?
    /// The channel's lease in milliseconds (`"lease"` in seconds, or `Starling-Lease`): set
    /// or changed by this event, renewed by every later one (SPEC §4).
    public var leaseMs: UInt64?

    public init(name: String = "message", data: EventData, conflate: String? = nil, final: Bool = false,
                producer: String? = nil, seq: Int64? = nil, epoch: Int64? = nil, channel: String? = nil,
                leaseMs: UInt64? = nil) {
        self.name = name; self.data = data; self.conflate = conflate; self.final = final
        self.producer = producer; self.seq = seq; self.epoch = epoch; self.channel = channel
        self.leaseMs = leaseMs
    }
}

/// A stored event. Immutable and shared: the store, every subscriber queue and replay,
/// on every loop, hold the same instance and the same encoded bytes.
public final class StoredEvent: Sendable {
    public let channel: String
    public let id: EventID
    public let name: String
    public let data: EventData
    public let conflate: String?
    public let final: Bool
    /// Wall-clock milliseconds when stored (retention by age).
    public let storedAtMs: UInt64
    /// `id:`/`event:`/`data:` lines and the blank line, encoded once.
    public let sse: SharedBytes

    /// Inline in the event (the standard library's atomic, not swift-atomics' Managed
    /// one, which is an object of its own: one allocation more for every event stored).
    private let envelopeOnce = AtomicLazyReference<SharedBytes.Storage>()

    /// For multiplexed streams: `event:` and `data: {"channel":…,"data":…}` and the blank
    /// line, without `id:` (each subscriber's cursor differs). Encoded on first use, once:
    /// loops racing to make it keep whichever copy was stored first.
    public var envelope: SharedBytes {
        if let made = envelopeOnce.load() { return SharedBytes(storage: made) }
        let made = SharedBytes(SSEEncoder.event(
            id: nil, name: name, data: "{\"channel\":\(JSONWriter.quoted(channel)),\"data\":\(data.jsonText)}"))
        return SharedBytes(storage: envelopeOnce.storeIfNil(made.storage))
    }

    public init(channel: String, id: EventID, name: String, data: EventData, conflate: String?,
                final: Bool, storedAtMs: UInt64) {
        self.channel = channel; self.id = id; self.name = name; self.data = data
        self.conflate = conflate; self.final = final; self.storedAtMs = storedAtMs
        self.sse = SSEEncoder.encode(id: id, name: name, data: data.wireText)
    }
}
