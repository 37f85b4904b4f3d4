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
import StarlingCore
import StarlingLoop

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
    /// For channels this loop owns: the loops with local subscribers, by index.
    private var watchers: [String: [Int]] = [:]

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
        for s in stores { s.peers = bound }
        return stores
    }

    private var index: Int { loop.index }

    /// The loop owning `channel`. Swift's string hash is seeded once per process, so
    /// every loop computes the same owner.
    func owner(of channel: String) -> Int {
        peers.count == 1 ? 0 : Int(UInt(bitPattern: channel.hashValue) % UInt(peers.count))
    }

    /// Runs `work` with partition `o`'s store on its loop and hands its result back to
    /// `completion` on this loop.
    private func onLoop<T: Sendable>(_ o: Int, _ completion: @escaping (T) -> Void,
                                     _ work: @escaping @Sendable (MemoryStore, @escaping (T) -> Void) -> Void) {
        let reply = LoopBound(completion, on: loop)
        peers[o].send(from: loop) { store in
            work(store.partition) { result in
                reply.send(from: store.loop) { $0(result) }
            }
        }
    }

    // Each call: a channel this loop owns is served at once, with no closure made (the
    // single-loop path stays as it was); another loop's goes there and back.

    public func append(_ drafts: [EventDraft], to channel: String,
                       completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        let o = owner(of: channel)
        if o == index { return partition.append(drafts, to: channel, completion: completion) }
        onLoop(o, completion) { store, done in store.append(drafts, to: channel, completion: done) }
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
        peers[o].send(from: loop) { $0.partition.holdLease(channel) }
    }

    public func watch(_ channel: String) {
        let me = index
        peers[owner(of: channel)].send(from: loop) { $0.addWatcher(me, channel) }
    }

    public func unwatch(_ channel: String) {
        let me = index
        peers[owner(of: channel)].send(from: loop) { $0.removeWatcher(me, channel) }
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
    /// watching loop (this one directly, the others through their inboxes, batched).
    public func store(didAppend events: [StoredEvent], to channel: String) {
        // One loop: the broker looks up its own legs; no second lookup here.
        if peers.count == 1 { return delegate?.store(didAppend: events, to: channel) ?? () }
        guard let list = watchers[channel] else { return }
        for k in list {
            if k == index {
                delegate?.store(didAppend: events, to: channel)
            } else {
                peers[k].send(from: loop) { $0.delegate?.store(didAppend: events, to: channel) }
            }
        }
    }
}
