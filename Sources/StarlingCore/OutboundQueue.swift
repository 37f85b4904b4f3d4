// OutboundQueue: one subscriber's bounded queue of encoded bytes (SPEC §5).
// Items are shared SharedBytes (no per-subscriber copy). The writer drains many items
// per write. Over capacity, runs of token events are merged first (TokenMerge.swift: one
// event per run, encoded for this subscriber alone), then superseded snapshots (same
// `conflate` key as a newer queued item) are dropped; if that is not enough the caller
// disconnects the subscriber, who resumes from history with Last-Event-ID, so nothing
// retained is lost. Below capacity nothing is scanned, merged or dropped.
import DequeModule

public struct OutboundQueue {
    public struct Item {
        public let bytes: SharedBytes
        public let conflate: String?
        /// Set on the items of a mergeable token event (`--merge-events`); nil otherwise.
        public let token: Token?
        public init(_ bytes: SharedBytes, conflate: String? = nil, token: Token? = nil) {
            self.bytes = bytes; self.conflate = conflate; self.token = token
        }
    }

    /// What a queued item is to TokenMerge.
    public enum Token {
        /// A single-channel stream's event: the item's bytes are its `sse`.
        case event(StoredEvent)
        /// A multiplexed stream's per-subscriber `id:` line, followed by the event's envelope.
        case cursor
        /// A multiplexed stream's event: the item's bytes are its `envelope`.
        case envelope(StoredEvent)
    }

    public enum PushResult: Equatable { case queued, relieved(merged: Int, dropped: Int), overflow }

    public var capacity: Int
    private var pending = Deque<Item>()
    /// Bytes of the first pending item already written by a partial write.
    public private(set) var headOffset = 0
    public private(set) var pendingBytes = 0
    /// Bytes handed to the kernel's write queue and not yet confirmed.
    public private(set) var inFlightBytes = 0

    public init(capacity: Int) { self.capacity = capacity }

    public var totalBytes: Int { pendingBytes + inFlightBytes }
    public var pendingCount: Int { pending.count }
    public var isIdle: Bool { pending.isEmpty && inFlightBytes == 0 }
    public var hasPending: Bool { !pending.isEmpty }

    /// Adds an item; past capacity it first merges and conflates, then reports overflow.
    public mutating func push(_ item: Item) -> PushResult {
        pushUnbounded(item)
        return relieve()
    }

    /// Over capacity: merges token runs, then drops superseded snapshots (and merges the
    /// runs the drop made adjacent), and says whether that was enough.
    public mutating func relieve() -> PushResult {
        guard totalBytes > capacity else { return .queued }
        var merged = mergeTokens()
        var dropped = 0
        if totalBytes > capacity {
            dropped = conflate()
            if dropped > 0, totalBytes > capacity { merged += mergeTokens() }
        }
        return totalBytes > capacity ? .overflow : .relieved(merged: merged, dropped: dropped)
    }

    /// Whether any pending item is a token (none are unless `--merge-events` is set).
    private var mayHoldTokens: Bool { pending.contains { $0.token != nil } }

    /// Merges each run of pending token events into one event; returns how many events
    /// were folded into others. The head is kept when part of it is already on the wire.
    public mutating func mergeTokens() -> Int {
        guard mayHoldTokens else { return 0 }
        let (items, folded) = TokenMerge.merge(pending, from: headOffset > 0 ? 1 : 0,
                                               maxBytes: TokenMerge.maxMergedBytes(clientBuffer: capacity))
        guard folded > 0 else { return 0 }
        pending = items
        pendingBytes = pending.reduce(0) { $0 + $1.bytes.count } - headOffset
        return folded
    }

    /// Adds an item whatever the capacity (the opening bytes, an HTTP response).
    public mutating func pushUnbounded(_ item: Item) {
        pending.append(item)
        pendingBytes += item.bytes.count
    }

    /// Drops every pending item whose conflate key appears again later in the queue.
    /// The head is kept when part of it is already on the wire.
    public mutating func conflate() -> Int {
        var seen = Set<String>()
        var kept = Deque<Item>()
        var dropped = 0
        for (k, item) in pending.enumerated().reversed() {
            if let key = item.conflate, !(k == 0 && headOffset > 0) {
                if !seen.insert(key).inserted {
                    dropped += 1
                    pendingBytes -= item.bytes.count
                    continue
                }
            }
            kept.prepend(item)
        }
        pending = kept
        return dropped
    }

    /// Visits up to `maxItems` pending buffers from the head (the first one past
    /// `headOffset`), for a gathered write.
    public func forEachPending(maxItems: Int, _ body: (UnsafeRawPointer, Int) -> Void) {
        for (k, item) in pending.prefix(maxItems).enumerated() {
            let skip = k == 0 ? headOffset : 0
            body(UnsafeRawPointer(item.bytes.base) + skip, item.bytes.count - skip)
        }
    }

    /// Records `n` bytes written from the head synchronously.
    public mutating func consume(_ n: Int) {
        var left = n
        while left > 0, let first = pending.first {
            let rest = first.bytes.count - headOffset
            if left >= rest {
                left -= rest
                pendingBytes -= rest
                headOffset = 0
                pending.removeFirst()
            } else {
                headOffset += left
                pendingBytes -= left
                left = 0
            }
        }
    }

    /// Moves the first `count` pending items to the in-flight state, returning them to
    /// keep alive until the write completes, and how many bytes that is.
    public mutating func detach(_ count: Int) -> (items: [SharedBytes], bytes: Int) {
        var items: [SharedBytes] = []
        items.reserveCapacity(count)
        var bytes = 0
        for k in 0..<Swift.min(count, pending.count) {
            let item = pending.removeFirst()
            bytes += item.bytes.count - (k == 0 ? headOffset : 0)
            items.append(item.bytes)
            if k == 0 { headOffset = 0 }
        }
        pendingBytes -= bytes
        inFlightBytes += bytes
        return (items, bytes)
    }

    /// The kernel took `bytes` that were in flight.
    public mutating func completeInFlight(_ bytes: Int) { inFlightBytes -= bytes }

    public mutating func removeAll() {
        pending.removeAll()
        pendingBytes = 0
        headOffset = 0
    }
}
