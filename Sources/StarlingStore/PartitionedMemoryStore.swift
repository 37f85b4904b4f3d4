// PartitionedMemoryStore: the memory engine across `--threads N` loops. Each channel is
// owned by one loop (a hash of its name): its history and ID sequence exist once, in that
// loop's MemoryStore partition, touched only by that loop's thread. Each loop has one of
// these as its EventStore: calls on channels it owns run at once, as with one loop; calls
// on others travel to the owner's inbox and their results come back to the caller's.
//
// Live events: the owner keeps, per channel, the loops that watch it (those with local
// subscribers) and sends each stored batch to them. Messages between two loops keep their
// order, so a watch followed by a read reaches the owner in that order, and every event
// stored after the read arrives after its result: replay meets live with no gap.
//
// How messages travel (docs/design.md, "Cross-loop batching"): every message from this
// store to another loop's, whatever its kind, goes into one outbox per destination, in
// order; the outbox is sealed at the end of the loop turn (`EventLoop.onTurnSealed`) and
// handed over as one inbox item, so a turn costs one lock and one wake-up per peer, not one
// per publish. The hot messages are typed (`PeerMessage`): an append, its answer and a
// stored batch make no closure. The owner answers appends from one loop in the order they
// came, so the caller keeps their completions in a FIFO per owner and needs no ticket.
import DequeModule
import StarlingCore
import StarlingLoop

/// What one loop's store sends another's. Sendable: everything in it is immutable or a copy.
enum PeerMessage: Sendable {
    /// Store `drafts` on `channel` (the receiver owns it); answered by one `.appended`.
    case append([EventDraft], channel: String)
    /// The answer to the oldest `.append` the receiver sent and has not had answered.
    case appended(Result<AppendResult, BrokerError>)
    /// A batch stored on `channel`, which the receiver watches.
    case stored([StoredEvent], channel: String)
    /// The sender has local subscribers on `channel` (the receiver owns it) / no longer has.
    case watch(String)
    case unwatch(String)
    /// Anything else (reads, info, cancel, leases, and their answers): rare, so a closure.
    case run(@Sendable (PartitionedMemoryStore) -> Void)
}

/// One turn's messages to one peer, in order. The receiver moves each out (no copy, no
/// retain and release of its contents); the sender stops touching the batch once sent.
/// @unchecked Sendable: built on one loop, then handed whole to another (the inbox's
/// mutex orders the two), never touched by both.
final class PeerBatch: @unchecked Sendable {
    private var messages: UnsafeMutablePointer<PeerMessage>
    private var capacity: Int
    private var count = 0
    /// The next message `next` moves out.
    private var first = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 8)
        messages = .allocate(capacity: self.capacity)
    }

    deinit {
        (messages + first).deinitialize(count: count - first)
        messages.deallocate()
    }

    func append(_ message: consuming PeerMessage) {
        if count == capacity {
            let larger = UnsafeMutablePointer<PeerMessage>.allocate(capacity: capacity * 2)
            larger.moveInitialize(from: messages, count: count)
            messages.deallocate()
            messages = larger
            capacity *= 2
        }
        (messages + count).initialize(to: message)
        count += 1
    }

    var size: Int { count }

    /// The next message, moved out of the batch; nil after the last.
    func next() -> PeerMessage? {
        guard first < count else { return nil }
        defer { first += 1 }
        return (messages + first).move()
    }
}

/// The completion of an append sent to its owner. A struct, so a Deque holds the closure
/// as it is (a bare closure in a generic container is wrapped in a thunk: one allocation).
private struct AppendCompletion {
    let done: (Result<AppendResult, BrokerError>) -> Void
}

public final class PartitionedMemoryStore: EventStore, EventStoreDelegate {
    // unowned(unsafe): as MemoryStore.delegate.
    public unowned(unsafe) var delegate: EventStoreDelegate?
    public var isReady: Bool { true }
    /// This loop's partition: `/metrics` sums the loops.
    public var channelCount: Int? { partition.channelCount }

    let loop: EventLoop
    /// This loop's partition: the channels it owns.
    let partition: MemoryStore
    /// Every loop's store, by loop index (this one included); set once by `group`.
    private var peers: [LoopBound<PartitionedMemoryStore>] = []
    /// The seed of the owner hash, the same on every loop; set once by `group`.
    private var seed: UInt64 = 0
    /// For channels this loop owns: the loops with local subscribers, by index.
    private var watchers: [String: [Int]] = [:]
    /// This turn's messages to each peer, by loop index, in order; sent when the turn ends.
    private var outbox: [PeerBatch?] = []
    /// How many messages each peer's last batch held: room reserved for the next.
    private var lastBatch: [Int] = []
    /// Completions of the appends sent to each owner, oldest first (answers come in order).
    private var awaiting: [Deque<AppendCompletion>] = []

    init(loop: EventLoop, partition: MemoryStore) {
        self.loop = loop
        self.partition = partition
        partition.delegate = self
    }

    /// One store per loop, sharing the channels between them. Called before the loops run.
    public static func group(loops: [EventLoop], retainEvents: Int, retainSeconds: Int) -> [PartitionedMemoryStore] {
        let stores = loops.map {
            PartitionedMemoryStore(loop: $0, partition: MemoryStore(retainEvents: retainEvents, retainSeconds: retainSeconds))
        }
        let bound = stores.map { LoopBound($0, on: $0.loop) }
        // Seeded per process, as Swift's own string hash was: the split of channels over
        // loops is not fixed in advance (nor known outside the process).
        let seed = UInt64.random(in: 0...UInt64.max)
        for s in stores {
            s.peers = bound
            s.seed = seed
            guard stores.count > 1 else { continue }
            s.outbox = Array(repeating: nil, count: stores.count)
            s.lastBatch = Array(repeating: 0, count: stores.count)
            s.awaiting = Array(repeating: [], count: stores.count)
            s.loop.onTurnSealed { [unowned s] in s.seal() }
        }
        return stores
    }

    private var index: Int { loop.index }

    /// The loop owning `channel`: a multiplicative hash of its bytes, eight at a time, from
    /// a per-process seed, the same on every loop (channel names are ASCII, so equal names
    /// have equal bytes). A fraction of the cost of `hashValue` (SipHash) on a short name,
    /// and every publish asks.
    func owner(of channel: String) -> Int {
        guard peers.count > 1 else { return 0 }
        // A native string lends its bytes without a copy or a retain; any other is copied.
        let h = channel.utf8.withContiguousStorageIfAvailable { hash(UnsafeRawBufferPointer($0)) }
            ?? Array(channel.utf8).withUnsafeBytes { hash($0) }
        return Int(h % UInt64(peers.count))
    }

    @inline(__always)
    private func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let m: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h = seed ^ (UInt64(bytes.count) &* m)
        var at = 0
        while at + 8 <= bytes.count {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) &* m
            h ^= h >> 32
            at += 8
        }
        let rest = bytes.count - at
        if rest > 0 {
            var tail: UInt64 = 0
            if bytes.count >= 8 {
                // The last 8 bytes in one load, the ones already hashed shifted out.
                tail = bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self) >> UInt64(64 - 8 * rest)
            } else {
                for k in 0..<rest { tail |= UInt64(bytes[k]) << UInt64(8 * k) }
            }
            h = (h ^ tail) &* m
        }
        return h ^ (h >> 32)
    }

    // MARK: messages to other loops

    /// Queues `message` for loop `k` (not this one), after everything queued for it before.
    private func post(_ message: consuming PeerMessage, to k: Int) {
        if let batch = outbox[k] { return batch.append(message) }
        let batch = PeerBatch(capacity: lastBatch[k])
        batch.append(message)
        outbox[k] = batch
    }

    /// End of the loop turn: each peer's messages leave as one inbox item.
    private func seal() {
        for k in outbox.indices {
            guard let batch = outbox[k] else { continue }
            outbox[k] = nil
            lastBatch[k] = batch.size
            let peer = peers[k], from = index
            loop.send(to: peer.loop.inbox) { peer.value.receive(batch, from: from) }
        }
    }

    /// Loop `k`'s messages of one of its turns, in its order.
    private func receive(_ batch: PeerBatch, from k: Int) {
        while let message = batch.next() {
            switch consume message {
            case .append(let drafts, let channel):
                // Answered at once, before the events reach any watcher (MemoryStore's
                // order): the answer goes back ahead of the batch it stored.
                let now = partition.appendNow(drafts, to: channel) { post(.appended($0), to: k) }
                precondition(now, "the memory engine appends at once")
            case .appended(let result):
                let completion = awaiting[k].removeFirst()
                completion.done(result)
            case .stored(let events, let channel):
                delegate?.store(didAppend: events, to: channel, listener: nil)
            case .watch(let channel):
                addWatcher(k, channel)
            case .unwatch(let channel):
                removeWatcher(k, channel)
            case .run(let body):
                body(self)
            }
        }
    }

    /// Runs `work` with partition `o`'s store on its loop and hands its result back to
    /// `completion` on this loop, both ways in order with every other message.
    private func onLoop<T: Sendable>(_ o: Int, _ completion: @escaping (T) -> Void,
                                     _ work: @escaping @Sendable (MemoryStore, @escaping (T) -> Void) -> Void) {
        let reply = LoopBound(completion, on: loop)
        let me = index
        post(.run { owner in
            work(owner.partition) { result in owner.post(.run { _ in reply.value(result) }, to: me) }
        }, to: o)
    }

    // Each call: a channel this loop owns is served at once, with no closure made (the
    // single-loop path stays as it was); another loop's goes there and back.

    public func append(_ drafts: [EventDraft], to channel: String,
                       completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        let o = owner(of: channel)
        if o == index { return partition.append(drafts, to: channel, completion: completion) }
        awaiting[o].append(AppendCompletion(done: completion))
        post(.append(drafts, channel: channel), to: o)
    }

    public func appendNow(_ drafts: [EventDraft], to channel: String,
                          answer: (Result<AppendResult, BrokerError>) -> Void) -> Bool {
        owner(of: channel) == index && partition.appendNow(drafts, to: channel, answer: answer)
    }

    public func read(_ channel: String, from: ResumePoint, limit: Int,
                     completion: @escaping (Result<ReadResult, BrokerError>) -> Void) {
        let o = owner(of: channel)
        if o == index { return partition.read(channel, from: from, limit: limit, completion: completion) }
        onLoop(o, completion) { store, done in store.read(channel, from: from, limit: limit, completion: done) }
    }

    public func info(_ channel: String, completion: @escaping (Result<ChannelInfo, BrokerError>) -> Void) {
        let o = owner(of: channel)
        if o == index { return partition.info(channel, completion: completion) }
        onLoop(o, completion) { store, done in store.info(channel, completion: done) }
    }

    public func cancel(_ channel: String, data: String, completion: @escaping (Result<StoredEvent, BrokerError>) -> Void) {
        let o = owner(of: channel)
        if o == index { return partition.cancel(channel, data: data, completion: completion) }
        onLoop(o, completion) { store, done in store.cancel(channel, data: data, completion: done) }
    }

    public func holdLease(_ channel: String) {
        let o = owner(of: channel)
        if o == index { return partition.holdLease(channel) }
        post(.run { $0.partition.holdLease(channel) }, to: o)
    }

    public func watch(_ channel: String) {
        let o = owner(of: channel)
        if o == index { return addWatcher(o, channel) }
        post(.watch(channel), to: o)
    }

    /// Kept by the partition only when it owns the channel: it is this loop's broker's
    /// record, and only this loop's partition hands it back (the other loops' brokers
    /// look their channels up when the events reach them).
    public func setListener(_ listener: AnyObject?, for channel: String) {
        if owner(of: channel) == index { partition.setListener(listener, for: channel) }
    }

    public func unwatch(_ channel: String) {
        let o = owner(of: channel)
        if o == index { return removeWatcher(o, channel) }
        post(.unwatch(channel), to: o)
    }

    private func addWatcher(_ k: Int, _ channel: String) {
        if watchers[channel] == nil { partition.watch(channel) }
        watchers[channel, default: []].append(k)
    }

    private func removeWatcher(_ k: Int, _ channel: String) {
        guard var list = watchers[channel], let at = list.firstIndex(of: k) else { return }
        list.remove(at: at)
        if list.isEmpty {
            watchers[channel] = nil
            partition.unwatch(channel)
        } else {
            watchers[channel] = list
        }
    }

    public func tick(nowMs: UInt64) { partition.tick(nowMs: nowMs) }

    /// The partition stored events of a channel this loop owns: hand them to every
    /// watching loop (this one directly, the others in this turn's batch to them).
    public func store(didAppendOne event: StoredEvent, to channel: String, listener: AnyObject?) {
        // One loop: handed on as it came (no array); several: `didAppend`'s hand-offs.
        if peers.count == 1 { return delegate?.store(didAppendOne: event, to: channel, listener: listener) ?? () }
        store(didAppend: [event], to: channel, listener: listener)
    }

    public func store(didAppend events: [StoredEvent], to channel: String, listener: AnyObject?) {
        // One loop: no lookup here; the broker's own record comes with the events.
        if peers.count == 1 { return delegate?.store(didAppend: events, to: channel, listener: listener) ?? () }
        guard let list = watchers[channel] else { return }
        for k in list {
            if k == index {
                // The partition is this loop's, so the listener is this loop's broker's.
                delegate?.store(didAppend: events, to: channel, listener: listener)
            } else {
                post(.stored(events, channel: channel), to: k)
            }
        }
    }
}
