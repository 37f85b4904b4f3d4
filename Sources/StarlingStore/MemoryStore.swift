// MemoryStore: the embedded engine (SPEC §6). Per-channel ring of StoredEvents with
// retention by count and by age; completes every call synchronously on its loop.
//
// Invariants per channel: `events` is in strictly increasing ID order; `trimmedThrough`
// is the newest ID ever dropped by retention (so a resume point before it is a gap);
// once `finalID` is set nothing more is appended, and `state` says how the channel ended
// (kept when retention drops the final event itself).
//
// Leases: a leased open channel is in `leased` with its deadline; the tick ends each one
// whose deadline has passed with a final `starling.abandoned` event, exactly once (this
// partition is the channel's only owner).
//
// Forgetting: a channel whose newest event is older than the retention and that no local
// subscriber watches is removed with its producers, as Redis expires the channel's key;
// its name is then free again, even after a final event. It happens on access (exact)
// and by a sweep of `expiry`, a queue of channels in order of when they fall due, which
// visits at most `sweepBudget` entries per tick and never walks every channel.
import CLibUV
import DequeModule
import StarlingCore

public final class MemoryStore: EventStore {
    final class Channel {
        let name: String
        var events = Deque<StoredEvent>()
        var lastID: EventID?
        var trimmedThrough: EventID?
        var finalID: EventID?
        var state = ChannelState.open
        /// The lease, once an event set one, and when it runs out (wall-clock ms).
        var leaseMs: UInt64?
        var leaseDueMs: UInt64 = 0
        var producers = ProducerTable()
        /// Wall-clock ms of the newest append: the channel is due `retainMs` after it.
        var lastAppendMs: UInt64 = 0
        /// The channel has an entry in the expiry queue.
        var queued = false
        /// Removed from the store; an expiry entry may still hold it until popped.
        var forgotten = false
        /// The delegate's record of the channel (`setListener`), handed back with appends.
        var listener: AnyObject?

        init(name: String) { self.name = name }
    }

    /// A channel to look at once `dueMs` has passed.
    struct Due {
        let channel: Channel
        let dueMs: UInt64
    }

    // unowned(unsafe), not weak: the delegate (the broker, or the partitioned store over
    // this one) owns this store and outlives it, and a weak reference would give it a side
    // table, sending every retain and release of it down the slow path (StarlingServer:
    // the broker is touched on every publish).
    public unowned(unsafe) var delegate: EventStoreDelegate?
    public var isReady: Bool { true }
    public var channelCount: Int? { channels.count }

    private var channels: [String: Channel] = [:]
    /// Open channels holding a lease, looked at on every tick.
    private var leased: [String: Channel] = [:]
    /// Local subscription count per channel (watch/unwatch); a watched channel is kept.
    private var watchers: [String: Int] = [:]
    /// The delegate's listeners by channel, for channels made (again) after it set them.
    private var listeners: [String: AnyObject] = [:]
    /// Nondecreasing `dueMs` from front to back (an entry re-queued behind later ones takes
    /// the back's due: it is looked at late, never early, and `live` forgets exactly).
    private var expiry = Deque<Due>()
    private var expiryPeak = 0
    private var channelsPeak = 0
    private let retainEvents: Int
    private let retainMs: UInt64
    private let clock: () -> UInt64
    /// IDs older than this instance were made by a previous process: their history is gone.
    private let createdMs: UInt64

    /// Expiry entries looked at per tick: bounds the loop's pause (300,000 due channels
    /// are forgotten in about 20 ticks).
    static let sweepBudget = 16_384
    /// Forgotten channels after which a finished wave hands its memory back.
    static let trimAfter = 1024
    private var forgottenSinceTrim = 0
    private var lastTrimMs: UInt64 = 0

    /// glibc raises its mmap threshold (and with it the trim threshold, up to 64 MB) each
    /// time a large block is freed, after which freed memory at the top of a thread's
    /// arena is never handed back: 300,000 forgotten channels on 2 loops left 34 MB of 24
    /// resident. Fixing both at glibc's own defaults (128 KiB) keeps its first behaviour
    /// for the life of the process; once per process, before the first channel.
    private static let mallocThresholdFixed: Bool =
        mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1

    public init(retainEvents: Int, retainSeconds: Int, clock: @escaping () -> UInt64 = WallClock.nowMs) {
        _ = Self.mallocThresholdFixed
        self.retainEvents = max(1, retainEvents)
        self.retainMs = UInt64(max(1, retainSeconds)) * 1000
        self.clock = clock
        self.createdMs = clock()
    }

    public func append(_ drafts: [EventDraft], to name: String,
                       completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        appendBatch(drafts, to: name, completion)
    }

    public func appendNow(_ drafts: [EventDraft], to name: String,
                          answer: (Result<AppendResult, BrokerError>) -> Void) -> Bool {
        appendBatch(drafts, to: name, answer)
        return true
    }

    /// Both appends: `completion` runs once, before the delegate hears of the events.
    private func appendBatch(_ drafts: [EventDraft], to name: String,
                             _ completion: (Result<AppendResult, BrokerError>) -> Void) {
        // A final event must end the batch: nothing may follow it.
        if let k = drafts.firstIndex(where: { $0.final }), k != drafts.count - 1 {
            return completion(.failure(BrokerError(.badRequest, "bad_event", "event [\(k + 1)]: follows the final event")))
        }
        let now = clock()
        let existing = live(name, nowMs: now)
        if let existing { abandonIfLapsed(existing, nowMs: now) }
        // The whole batch is judged before anything is stored (same order as publish.lua:
        // an ended channel refuses whatever is not a repeat, then gaps and fencing).
        let judged = (existing?.producers ?? ProducerTable()).judge(drafts)
        if let state = existing?.state, state != .open, (try? judged.get()).map({ $0.duplicates < drafts.count }) ?? true {
            return completion(.failure(state.refusal(channel: name)))
        }
        let verdict: ProducerVerdict
        switch judged {
        case .failure(let e): return completion(.failure(e))
        case .success(let v): verdict = v
        }
        guard verdict.duplicates < drafts.count else {
            if let existing { renewLease(existing, nowMs: now) }  // a repeat is a sign of life too
            return completion(.success(.nothingStored(duplicates: verdict.duplicates)))
        }
        let channel = existing ?? create(name)
        channel.producers.record(verdict)
        // One event stored (a token, the common case) goes to the delegate alone: no array.
        let count = drafts.count - verdict.duplicates
        var stored: [StoredEvent] = []
        if count > 1 { stored.reserveCapacity(count) }
        var first: StoredEvent?, last: StoredEvent?
        // Fields read in place, not `for d in` nor `draft: drafts[k]`: an EventDraft copied
        // out retains its five strings and releases them again (~300 instructions each).
        for k in drafts.indices where !verdict.isDuplicate(k) {
            let id = EventID.next(after: channel.lastID, nowMs: now)
            let e = drafts.withUnsafeBufferPointer { d in
                StoredEvent(channel: name, id: id, name: d[k].name, data: d[k].data, conflate: d[k].conflate,
                            final: d[k].final, storedAtMs: now)
            }
            channel.events.append(e)
            channel.lastID = id
            if e.final {
                channel.finalID = id
                channel.state = ChannelState(finalEventNamed: e.name)
            }
            if first == nil { first = e }
            last = e
            if count > 1 { stored.append(e) }
        }
        if let k = drafts.lastIndex(where: { $0.leaseMs != nil }), let ms = drafts[k].leaseMs { channel.leaseMs = ms }
        renewLease(channel, nowMs: now)
        channel.lastAppendMs = now
        if !channel.queued { enqueue(channel, dueMs: now + retainMs) }
        trim(channel, nowMs: now)
        completion(.success(AppendResult(count: count, first: first?.id, last: last?.id, duplicates: verdict.duplicates)))
        if count == 1, let last {
            delegate?.store(didAppendOne: last, to: name, listener: channel.listener)
        } else {
            delegate?.store(didAppend: stored, to: name, listener: channel.listener)
        }
    }

    public func read(_ name: String, from: ResumePoint, limit: Int,
                     completion: @escaping (Result<ReadResult, BrokerError>) -> Void) {
        let now = clock()
        guard let channel = live(name, nowMs: now) else {
            // Never published, forgotten, or lost with a previous process: any ID is past its end.
            var gap: Gap?
            if case .after(let id) = from { gap = Gap(requested: id, resumedFrom: nil) }
            return completion(.success(ReadResult(events: [], gap: gap, reachedEnd: true, finalID: nil)))
        }
        trim(channel, nowMs: now)
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
            let trimmed = channel.trimmedThrough.map { id < $0 } ?? false
            let pastEnd = channel.lastID.map { id > $0 } ?? true
            let lost = trimmed || pastEnd || id.ms < createdMs
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
        let now = clock()
        guard let channel = live(name, nowMs: now) else {
            return completion(.success(ChannelInfo(lastID: nil, length: 0, state: .open)))
        }
        trim(channel, nowMs: now)
        completion(.success(ChannelInfo(lastID: channel.lastID, length: channel.events.count, state: channel.state)))
    }

    public func cancel(_ name: String, data: String, completion: @escaping (Result<StoredEvent, BrokerError>) -> Void) {
        let now = clock()
        let channel = live(name, nowMs: now) ?? create(name)
        abandonIfLapsed(channel, nowMs: now)
        guard channel.state == .open else { return completion(.failure(channel.state.refusal(channel: name))) }
        let e = end(channel, event: ChannelState.cancelledEvent, data: data, nowMs: now)
        completion(.success(e))
        delegate?.store(didAppend: [e], to: name, listener: channel.listener)
    }

    public func holdLease(_ name: String) {
        let now = clock()
        guard let channel = live(name, nowMs: now), channel.state == .open else { return }
        abandonIfLapsed(channel, nowMs: now)
        renewLease(channel, nowMs: now)
    }

    // MARK: leases and ends

    /// Moves a leased open channel's deadline to now plus its lease.
    private func renewLease(_ channel: Channel, nowMs: UInt64) {
        guard channel.state == .open else { return }
        guard let ms = channel.leaseMs else { return }
        channel.leaseDueMs = nowMs + ms
        leased[channel.name] = channel
    }

    /// Ends the channel as abandoned if its lease ran out (and tells the watchers).
    private func abandonIfLapsed(_ channel: Channel, nowMs: UInt64) {
        guard channel.state == .open, channel.leaseMs != nil, channel.leaseDueMs <= nowMs else { return }
        let e = end(channel, event: ChannelState.abandonedEvent, data: ChannelState.abandonedData, nowMs: nowMs)
        delegate?.store(didAppend: [e], to: channel.name, listener: channel.listener)
    }

    /// Stores the broker's own final event (`starling.cancelled`, `starling.abandoned`).
    private func end(_ channel: Channel, event name: String, data: String, nowMs: UInt64) -> StoredEvent {
        precondition(channel.state == .open, "a channel ends once")
        let id = EventID.next(after: channel.lastID, nowMs: nowMs)
        let e = StoredEvent(channel: channel.name, id: id, name: name, data: .json(data), conflate: nil, final: true,
                            storedAtMs: nowMs)
        channel.events.append(e)
        channel.lastID = id
        channel.finalID = id
        channel.state = ChannelState(finalEventNamed: name)
        channel.lastAppendMs = nowMs
        leased[channel.name] = nil
        if !channel.queued { enqueue(channel, dueMs: nowMs + retainMs) }
        trim(channel, nowMs: nowMs)
        return e
    }

    public func watch(_ name: String) {
        watchers[name, default: 0] += 1
    }

    public func setListener(_ listener: AnyObject?, for name: String) {
        listeners[name] = listener
        channels[name]?.listener = listener
    }

    public func unwatch(_ name: String) {
        guard let n = watchers[name] else { return }
        if n > 1 { watchers[name] = n - 1; return }
        watchers[name] = nil
        // Kept while watched; now it may fall due (or be due already).
        if let channel = channels[name], !channel.queued {
            enqueue(channel, dueMs: channel.lastAppendMs + retainMs)
        }
    }

    /// Forgets the channels that fell due, at most `sweepBudget` looked at per call.
    public func tick(nowMs: UInt64) {
        let now = clock()
        var budget = Self.sweepBudget
        var forgot = 0
        while budget > 0, let head = expiry.first, head.dueMs <= now {
            expiry.removeFirst()
            budget -= 1
            let channel = head.channel
            channel.queued = false
            guard !channel.forgotten else { continue }
            let due = channel.lastAppendMs + retainMs
            if due > now {
                enqueue(channel, dueMs: due)
            } else if watchers[channel.name] != nil {
                trim(channel, nowMs: now)  // its events go; the channel stays until unwatched
            } else {
                forget(channel)
                forgot += 1
            }
        }
        if forgot > 0 { compact() }
        if !leased.isEmpty {
            // Every leased channel is looked at: one comparison each per tick.
            let lapsed = leased.values.filter { $0.leaseDueMs <= now }
            for channel in lapsed { abandonIfLapsed(channel, nowMs: now) }
        }
        // Freed channels leave free pages scattered in malloc's heaps, which it keeps unless
        // asked: hand them back during a wave and once it is over (a quiet tick), at most
        // once a second. Measured with 300,000 channels on 2 loops: 24.4 MB before, 26.3 MB
        // after (16.9 MB of it free in malloc, and 30–36 MB resident, without the last trim).
        if forgottenSinceTrim > 0, forgottenSinceTrim >= Self.trimAfter || forgot == 0, now >= lastTrimMs + 1000 {
            forgottenSinceTrim = 0
            lastTrimMs = now
            compact()
            _ = malloc_trim(0)
        }
    }

    // MARK: channels

    /// The channel, unless it fell due unwatched: then it is forgotten now, and nil.
    private func live(_ name: String, nowMs: UInt64) -> Channel? {
        guard let channel = channels[name] else { return nil }
        if channel.lastAppendMs + retainMs <= nowMs, watchers[name] == nil {
            forget(channel)
            return nil
        }
        return channel
    }

    private func create(_ name: String) -> Channel {
        let channel = Channel(name: name)
        channel.listener = listeners[name]
        channels[name] = channel
        channelsPeak = max(channelsPeak, channels.count)
        return channel
    }

    private func forget(_ channel: Channel) {
        precondition(channels[channel.name] === channel, "forgetting a channel the store does not hold")
        channels[channel.name] = nil
        leased[channel.name] = nil
        forgottenSinceTrim += 1
        channel.forgotten = true
        channel.events = Deque()
        channel.producers = ProducerTable()
    }

    private func enqueue(_ channel: Channel, dueMs: UInt64) {
        precondition(!channel.queued, "a channel has at most one expiry entry")
        channel.queued = true
        expiry.append(Due(channel: channel, dueMs: max(dueMs, expiry.last?.dueMs ?? 0)))
        expiryPeak = max(expiryPeak, expiry.count)
    }

    /// Swift's Dictionary and Deque never shrink on removal: after a wave of channels is
    /// forgotten, rebuild them at their present size so the memory goes back to the OS.
    private func compact() {
        if channelsPeak > 4096, channels.count * 4 < channelsPeak {
            var fresh = [String: Channel](minimumCapacity: channels.count)
            for (name, channel) in channels { fresh[name] = channel }
            channels = fresh
            channelsPeak = channels.count
        }
        if expiryPeak > 4096, expiry.count * 4 < expiryPeak {
            var fresh = Deque<Due>()
            fresh.reserveCapacity(expiry.count)
            fresh.append(contentsOf: expiry)
            expiry = fresh
            expiryPeak = expiry.count
        }
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
