// MemoryStore: the embedded engine (SPEC §6). Per-channel ring of StoredEvents with
// retention by count and by age; completes every call synchronously on its loop.
//
// Invariants per channel: `events` is in strictly increasing ID order; `trimmedThrough`
// is the newest ID ever dropped by retention (so a resume point before it is a gap);
// once `finalID` is set nothing more is appended.
import DequeModule
import StarlingCore

public final class MemoryStore: EventStore {
    final class Channel {
        var events = Deque<StoredEvent>()
        var lastID: EventID?
        var trimmedThrough: EventID?
        var finalID: EventID?
        var producers: [String: Int64] = [:]
    }

    public weak var delegate: EventStoreDelegate?
    public var isReady: Bool { true }

    private var channels: [String: Channel] = [:]
    private let retainEvents: Int
    private let retainMs: UInt64
    private let clock: () -> UInt64
    /// IDs older than this instance were made by a previous process: their history is gone.
    private let createdMs: UInt64

    public init(retainEvents: Int, retainSeconds: Int, clock: @escaping () -> UInt64 = WallClock.nowMs) {
        self.retainEvents = max(1, retainEvents)
        self.retainMs = UInt64(max(1, retainSeconds)) * 1000
        self.clock = clock
        self.createdMs = clock()
    }

    public func append(_ drafts: [EventDraft], to name: String,
                       completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        let existing = channels[name]
        let channel = existing ?? Channel()
        if channel.finalID != nil {
            return completion(.failure(BrokerError(.conflict, "channel_final", "channel \(name) is final and accepts no more events")))
        }
        // A final event must end the batch: nothing may follow it.
        if let k = drafts.firstIndex(where: { $0.final }), k != drafts.count - 1 {
            return completion(.failure(BrokerError(.badRequest, "bad_event", "event [\(k + 1)]: follows the final event")))
        }
        if existing == nil { channels[name] = channel }
        let now = clock()
        var stored: [StoredEvent] = []
        stored.reserveCapacity(drafts.count)
        var duplicates = 0
        for d in drafts {
            if let producer = d.producer, let seq = d.seq {
                if let seen = channel.producers[producer], seq <= seen { duplicates += 1; continue }
                channel.producers[producer] = seq
            }
            let id = EventID.next(after: channel.lastID, nowMs: now)
            let e = StoredEvent(channel: name, id: id, draft: d, storedAtMs: now)
            channel.events.append(e)
            channel.lastID = id
            if d.final { channel.finalID = id }
            stored.append(e)
        }
        trim(channel, nowMs: now)
        completion(.success(AppendResult(stored: stored, duplicates: duplicates)))
        if !stored.isEmpty { delegate?.store(didAppend: stored, to: name) }
    }

    public func read(_ name: String, from: ResumePoint, limit: Int,
                     completion: @escaping (Result<ReadResult, BrokerError>) -> Void) {
        guard let channel = channels[name] else {
            var gap: Gap?
            if case .after(let id) = from, id.ms < createdMs { gap = Gap(requested: id, resumedFrom: nil) }
            return completion(.success(ReadResult(events: [], gap: gap, reachedEnd: true, finalID: nil)))
        }
        trim(channel, nowMs: clock())
        let events = channel.events
        var start: Int
        var gap: Gap?
        switch from {
        case .live:
            start = events.count
        case .earliest:
            start = 0
        case .after(let id):
            start = Self.firstIndex(after: id, in: events)
            let lost = (channel.trimmedThrough.map { id < $0 } ?? false) || id.ms < createdMs
            if lost, !(channel.finalID.map { id >= $0 } ?? false) {
                gap = Gap(requested: id, resumedFrom: start < events.count ? events[start].id : nil)
            }
        }
        let end = min(events.count, start + max(1, limit))
        let page = Array(events[start..<end])
        completion(.success(ReadResult(events: page, gap: gap, reachedEnd: end == events.count, finalID: channel.finalID,
                                       lastID: channel.lastID)))
    }

    public func info(_ name: String, completion: @escaping (Result<ChannelInfo, BrokerError>) -> Void) {
        guard let channel = channels[name] else {
            return completion(.success(ChannelInfo(lastID: nil, length: 0, final: false)))
        }
        trim(channel, nowMs: clock())
        completion(.success(ChannelInfo(lastID: channel.lastID, length: channel.events.count, final: channel.finalID != nil)))
    }

    public func watch(_ channel: String) {}
    public func unwatch(_ channel: String) {}

    public func tick(nowMs: UInt64) {
        for channel in channels.values { trim(channel, nowMs: nowMs) }
    }

    private func trim(_ channel: Channel, nowMs: UInt64) {
        while let first = channel.events.first,
              channel.events.count > retainEvents || first.storedAtMs + retainMs <= nowMs {
            channel.trimmedThrough = first.id
            channel.events.removeFirst()
        }
    }

    /// Index of the first event whose ID is greater than `id` (binary search).
    static func firstIndex(after id: EventID, in events: Deque<StoredEvent>) -> Int {
        var lo = 0, hi = events.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if events[mid].id <= id { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
