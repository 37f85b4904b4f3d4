// EventStore: the one protocol every storage engine implements (SPEC §6). Calls are
// made on the owning event loop and complete on it, possibly synchronously (memory)
// or later (Redis). Live appends reach the broker through the delegate.
import StarlingCore

/// What a subscriber's resume point found.
public struct ReadResult: Sendable {
    /// Retained events after the resume point, in channel order, at most the page limit.
    public var events: [StoredEvent]
    /// Set when the resume point is older than what is retained.
    public var gap: Gap?
    /// True when `events` reach the channel's newest event (no further page needed).
    public var reachedEnd: Bool
    /// The channel's final event, if it has completed.
    public var finalID: EventID?
    /// The channel's newest ID when read (nil if it has none): where a live-only
    /// subscriber stands, so a multiplexed cursor can resume it without loss.
    public var lastID: EventID?

    public init(events: [StoredEvent], gap: Gap?, reachedEnd: Bool, finalID: EventID?, lastID: EventID? = nil) {
        self.events = events; self.gap = gap; self.reachedEnd = reachedEnd; self.finalID = finalID; self.lastID = lastID
    }
}

/// History between `requested` and the oldest retained event is gone.
public struct Gap: Equatable, Sendable {
    public var requested: EventID
    /// The first event the stream carries after the notice; nil when none is retained.
    public var resumedFrom: EventID?
    public init(requested: EventID, resumedFrom: EventID?) { self.requested = requested; self.resumedFrom = resumedFrom }
}

public struct ChannelInfo: Equatable, Sendable {
    public var lastID: EventID?
    public var length: Int
    public var state: ChannelState
    /// Completed, however it ended.
    public var final: Bool { state != .open }
    public init(lastID: EventID?, length: Int, state: ChannelState) { self.lastID = lastID; self.length = length; self.state = state }
}

/// The outcome of an append: the events stored, in order, and how many drafts were
/// acknowledged without storing because their producer had already sent that `seq`.
/// What an append stored, for its answer: how many events, the first and last IDs, and
/// how many were producer repeats (acknowledged, not stored). The events themselves reach
/// subscribers through the delegate; the answer needs no copy of them (the Redis engine
/// would otherwise build and encode every event twice).
public struct AppendResult: Sendable {
    public var count: Int
    public var first: EventID?
    public var last: EventID?
    public var duplicates: Int

    public init(count: Int, first: EventID?, last: EventID?, duplicates: Int) {
        precondition(count >= 0 && (count == 0) == (first == nil) && (first == nil) == (last == nil), "IDs exactly when something was stored")
        self.count = count; self.first = first; self.last = last; self.duplicates = duplicates
    }

    public static func nothingStored(duplicates: Int) -> AppendResult { AppendResult(count: 0, first: nil, last: nil, duplicates: duplicates) }
}

public protocol EventStoreDelegate: AnyObject {
    /// Newly stored events of a watched channel, in order. `listener` is what the delegate
    /// last gave `setListener` for the channel (nil when it gave nothing or the engine keeps
    /// none): the delegate's own record of the channel, handed back so the fan-out does not
    /// look the channel up by name a second time.
    func store(didAppend events: [StoredEvent], to channel: String, listener: AnyObject?)
    /// `didAppend` for a publish that stored one event (an AI token, the common case), with
    /// no array made for it.
    func store(didAppendOne event: StoredEvent, to channel: String, listener: AnyObject?)
}

extension EventStoreDelegate {
    public func store(didAppendOne event: StoredEvent, to channel: String, listener: AnyObject?) {
        store(didAppend: [event], to: channel, listener: listener)
    }
}

public protocol EventStore: AnyObject {
    /// Not retained: the delegate owns the store and outlives it.
    var delegate: EventStoreDelegate? { get set }
    /// False while the backing store is unreachable (`/readyz` answers 503).
    var isReady: Bool { get }
    /// Channels this process holds (the `starling_channels` gauge); nil when they live
    /// elsewhere (Redis keeps them, and expires them by TTL).
    var channelCount: Int? { get }

    /// Stores `drafts` in order as one batch: all or nothing. Producer repeats are
    /// acknowledged, not stored (ProducerSequence.swift). Fails with `.conflict` if the
    /// channel has ended (`channel_final`, `channel_cancelled`, `channel_abandoned`; unless
    /// every draft is a repeat) or a producer seq jumps ahead or is fenced (`eventIndex`
    /// names the draft), `.unavailable` if the store cannot be reached.
    /// Leases: a draft's `leaseMs` sets the channel's lease; every stored batch of a leased
    /// channel renews its deadline. A channel whose deadline has passed is ended as
    /// abandoned (a `starling.abandoned` final event) before the batch is judged.
    func append(_ drafts: [EventDraft], to channel: String,
                completion: @escaping (Result<AppendResult, BrokerError>) -> Void)

    /// `append` done at once, when this engine can (memory, on a channel this loop owns):
    /// `answer` runs before this returns and before the stored events reach the delegate,
    /// as `append`'s completion would, and the result is true. False: nothing was done
    /// (call `append`). The closure does not escape, so the publish path allocates no
    /// closure context for it.
    func appendNow(_ drafts: [EventDraft], to channel: String,
                   answer: (Result<AppendResult, BrokerError>) -> Void) -> Bool

    /// How long an appended batch may wait to leave with others (`--redis-pace`), in whole
    /// milliseconds rounded up; 0: it leaves at the loop turn's end.
    var paceMs: UInt64 { get }

    /// The batch just appended has a client waiting on its answer alone (no pipelining, and
    /// it came straight back after its previous answer): send it at this turn's end,
    /// whatever the pace, since holding it would hold the client.
    func expedite()

    /// Reads up to `limit` retained events after `from`. A resume point older than the
    /// retained history, or past the channel's newest ID (a channel this store lost or
    /// never had), reports a gap.
    func read(_ channel: String, from: ResumePoint, limit: Int,
              completion: @escaping (Result<ReadResult, BrokerError>) -> Void)

    func info(_ channel: String, completion: @escaping (Result<ChannelInfo, BrokerError>) -> Void)

    /// Stop: ends the channel (created if it never was) with a final `starling.cancelled`
    /// event whose data is `data`; it reaches watchers like any event. Fails with
    /// `.conflict` (the state's code) if the channel has already ended.
    func cancel(_ channel: String, data: String, completion: @escaping (Result<StoredEvent, BrokerError>) -> Void)

    /// An open streaming publish holds the channel's lease: its deadline moves to now plus
    /// the lease. Nothing happens on a channel without a lease or one that has ended.
    func holdLease(_ channel: String)

    /// The broker has local subscribers on `channel` (engines that fan in from
    /// elsewhere subscribe only to these) / no longer has any.
    func watch(_ channel: String)
    func unwatch(_ channel: String)
    /// Keeps `listener` (nil: drops it) to hand back with the channel's appends: the memory
    /// store on the channel's record, Redis on its watch (set after `watch`, dropped before
    /// `unwatch`). A partition of another loop keeps nothing.
    func setListener(_ listener: AnyObject?, for channel: String)

    /// Housekeeping on the loop's tick: retention by age, leases that ran out (each ended
    /// once, as abandoned, by whichever engine part owns the deadline) and the like.
    func tick(nowMs: UInt64)

    /// Counts for /metrics (engines without a connection report zeros).
    var stats: StoreStats { get }
}

/// What an engine counts about its backing store, for /metrics.
public struct StoreStats: Sendable {
    /// Connections re-established after a loss.
    public var reconnects = 0
    /// Commands answered with an error, or lost with their connection.
    public var commandErrors = 0
    /// Redis Cluster redirects followed: `ASK` (a slot being migrated) and `MOVED` (a slot
    /// that moved, or a stale map).
    public var askRedirects = 0
    public var movedRedirects = 0
    public init() {}
}

extension EventStore {
    public var stats: StoreStats { StoreStats() }
    public func setListener(_ listener: AnyObject?, for channel: String) {}
    public func appendNow(_ drafts: [EventDraft], to channel: String,
                          answer: (Result<AppendResult, BrokerError>) -> Void) -> Bool { false }
    public var paceMs: UInt64 { 0 }
    public func expedite() {}
}
