// BrokerGroup: the brokers of one process, one per loop (`--threads N`), and what they
// share: the connection budget and each loop's queued-byte total (for the global cap).
// Process-wide answers (metrics, a channel's subscriber count, drain) are gathered by
// asking every loop through its inbox, so no loop reads another's state and the per-event
// path takes no lock. Built once, before the loops run; immutable after.
import StarlingHTTP
import StarlingLoop
import Atomics

public final class BrokerGroup: Sendable {
    let members: [LoopBound<Broker>]
    public let budget: ConnectionBudget
    /// Bytes queued on each loop's backlogged connections, as of its last tick. Atomics,
    /// not a lock: Swift's Mutex waits on a bare futex, which ThreadSanitizer cannot see.
    private let queued: [ManagedAtomic<Int>]

    public init(brokers: [Broker], budget: ConnectionBudget) {
        members = brokers.map { LoopBound($0, on: $0.loop) }
        self.budget = budget
        queued = brokers.map { _ in ManagedAtomic(0) }
        for b in brokers { b.group = self }
    }

    public var count: Int { members.count }

    /// Records loop `k`'s queued bytes and returns the whole process's (every 500 ms per
    /// loop: housekeeping, not the event path).
    func reportQueued(loop k: Int, bytes: Int) -> Int {
        queued[k].store(bytes, ordering: .relaxed)
        return queued.reduce(0) { $0 + $1.load(ordering: .relaxed) }
    }

    /// Asks every broker (on its own loop) for a value and hands all of them, in loop order,
    /// to `done` on `origin`'s loop. `work` answers through its callback, now or later.
    func collect<T: Sendable>(from origin: Broker,
                              _ work: @escaping @Sendable (Broker, _ reply: @escaping (T) -> Void) -> Void,
                              then done: @escaping ([T]) -> Void) {
        let gathering = LoopBound(Gathering<T>(count: members.count, done: done), on: origin.loop)
        for (k, member) in members.enumerated() {
            member.send(from: origin.loop) { broker in
                work(broker) { value in
                    gathering.send(from: broker.loop) { $0.put(k, value) }
                }
            }
        }
    }

    /// Runs `body` on every broker's loop (drain, shutdown).
    func forEach(from origin: Broker, _ body: @escaping @Sendable (Broker) -> Void) {
        for member in members { member.send(from: origin.loop, body) }
    }
}

/// Answers arriving from each loop, completed when the last one is in.
private final class Gathering<T> {
    private var values: [T?]
    private var missing: Int
    private let done: ([T]) -> Void

    init(count: Int, done: @escaping ([T]) -> Void) {
        values = Array(repeating: nil, count: count)
        missing = count
        self.done = done
    }

    func put(_ k: Int, _ value: T) {
        precondition(values[k] == nil, "one answer per loop")
        values[k] = value
        missing -= 1
        if missing == 0 { done(values.map { $0! }) }
    }
}
