// EventLoop: one libuv loop on one thread, and the one wrapper over libuv that the broker,
// the stores and the load tool share: run/stop, the loop clock, hooks run once per loop
// turn just before it blocks (where writes coalesce), timers, signals, and the inbox other
// threads use to hand it work. Every method but `inbox.post` runs on the loop's thread.
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

public final class EventLoop {
    public let uv: UnsafeMutablePointer<uv_loop_t>
    /// Where other loops and threads post work for this one (the only thread-safe part).
    public let inbox: Inbox
    /// Position in its `LoopGroup` (0 for a loop of its own).
    public let index: Int

    private let prepare: UnsafeMutablePointer<uv_prepare_t>
    private var turnHooks: [() -> Void] = []
    private var sealHooks: [() -> Void] = []
    /// Work for other loops gathered during this turn, by destination: sent as one batch per
    /// destination just before this loop blocks, so N events to N loops cost N wake-ups.
    private var outboxes: [[@Sendable () -> Void]] = []
    private var outboxTargets: [Inbox?] = []
    private var pendingOutboxes: [Int] = []
    /// The thread that runs this loop; set by `run`.
    private var owner: pthread_t?
    /// Least nanoseconds from one turn's end to the next's (`pace`); 0: none.
    private var paceNs: UInt64 = 0
    private var lastTurnEndNs: UInt64 = 0
    /// Requests this loop sent to a backend (Redis) whose replies have not come yet. A
    /// loop with any does not keep its pace: the replies are due within microseconds, and
    /// each would otherwise wait out a pace (a publish waits for its script's reply, so
    /// with pipelined publishers the pace capped the publish rate).
    public var awaitingReplies = 0

    /// `keepsRunning`: `run` returns only on `stop` (a broker's loops); otherwise it returns
    /// once no handle but the inbox is left.
    public init(index: Int = 0, keepsRunning: Bool = true) {
        self.index = index
        uv = .allocate(capacity: 1)
        uv_loop_init(uv)
        prepare = .allocate(capacity: 1)
        inbox = Inbox(index: index)
        uv.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        inbox.attach(to: uv, keepsLoopRunning: keepsRunning)
        uv_prepare_init(uv, prepare)
        prepare.pointee.data = uv.pointee.data
        uv_prepare_start(prepare) { handle in EventLoop.from(handle!.pointee.loop).turnEnded() }
        // The prepare handle alone must not keep `run` from returning.
        uv_unref(UnsafeMutableRawPointer(prepare).assumingMemoryBound(to: uv_handle_t.self))
    }

    /// The loop a libuv handle belongs to.
    public static func from(_ loop: UnsafeMutablePointer<uv_loop_t>!) -> EventLoop {
        Unmanaged<EventLoop>.fromOpaque(loop.pointee.data).takeUnretainedValue()
    }

    /// Milliseconds of the loop's cached monotonic clock.
    public var nowMs: UInt64 { uv_now(uv) }

    /// Nanoseconds of the monotonic clock, read now (not cached): for paces under a millisecond.
    public var nowNs: UInt64 { uv_hrtime() }

    /// Runs until stopped or until no referenced handle is left; this thread owns the loop.
    public func run() {
        owner = pthread_self()
        uv_run(uv, UV_RUN_DEFAULT)
    }

    /// Runs one turn (blocking for I/O if nothing is ready): for start-up waits only.
    public func runOnce() { uv_run(uv, UV_RUN_ONCE) }

    public func stop() { uv_stop(uv) }

    /// True on the thread running this loop (or before it runs: set-up is single-threaded).
    public var isCurrent: Bool { owner.map { pthread_equal($0, pthread_self()) != 0 } ?? true }

    /// Runs `body` at the end of every loop turn, before the loop blocks: where connections
    /// flush their queued bytes (one gathered write per turn) and publishers top up.
    public func onEveryTurn(_ body: @escaping () -> Void) { turnHooks.append(body) }

    /// Runs `body` at the end of every loop turn after every `onEveryTurn` hook, just before
    /// this turn's work for other loops leaves (`send`): where a component seals its own
    /// per-turn batch for another loop and sends it. Whatever the turn (its hooks included)
    /// added is in that batch; whatever callbacks add after it (inbox drains, I/O, timers
    /// run later in the same libuv iteration) is sealed at the next turn's end, which comes
    /// before the loop blocks again. `body` must not add work for the turn hooks.
    public func onTurnSealed(_ body: @escaping () -> Void) { sealHooks.append(body) }

    private func turnEnded() {
        for hook in turnHooks { hook() }
        for seal in sealHooks { seal() }
        sendOutboxes()
        if paceNs > 0 { keepPace() }
    }

    /// Turns at most every `microseconds` (0, the default: as fast as I/O comes). A turn
    /// that ends sooner than that after the previous one sleeps out the rest before the
    /// loop polls again, so what arrived meanwhile is handled in one turn: many requests
    /// per read, their deliveries' writes back to back, one wake-up instead of several.
    /// A turn after an idle spell does not wait, and a busy loop (turns longer than the
    /// pace) never sleeps. Why: on the many-channels shape at 20,000 publishes/s a loop
    /// woke for 1-2 requests at a time, and each wake-up and each switch between our code
    /// and the kernel's TCP path costs more than the work (`--turn-pace`,
    /// docs/operations.md; docs/benchmarks.md has the figures).
    public func pace(microseconds: Int) {
        paceNs = UInt64(max(0, microseconds)) * 1000
        paceMs = Self.wholeMs(ns: paceNs)
    }

    /// `ns` in whole milliseconds, rounded up (libuv's timers and clock count whole ones).
    public static func wholeMs(ns: UInt64) -> UInt64 { (ns + 999_999) / 1_000_000 }

    /// The pace in whole milliseconds, rounded up; 0: none.
    public private(set) var paceMs: UInt64 = 0

    /// This turn answered a client that waits on each answer (StarlingHTTP's
    /// `Connection.waitsOnAnswers`): the loop does not sleep out its pace for the next 2 ms,
    /// the client's next request being due within them (held, it would make one request per
    /// pace, where unpaced it makes many). A window, not this turn alone: a turn with nothing
    /// of the client's (a write's completion, a timer) may come between.
    public func expediteTurn() { expediteUntilNs = uv_hrtime() &+ 2_000_000 }
    private var expediteUntilNs: UInt64 = 0

    private func keepPace() {
        let now = uv_hrtime()
        let since = now &- lastTurnEndNs
        if since < paceNs, awaitingReplies == 0, now >= expediteUntilNs {
            var wait = timespec(tv_sec: 0, tv_nsec: Int(paceNs - since))
            var left = timespec()
            while nanosleep(&wait, &left) != 0, errno == EINTR { wait = left }
            uv_update_time(uv)
            lastTurnEndNs = uv_hrtime()
        } else {
            lastTurnEndNs = now
        }
    }

    // MARK: other loops

    /// Runs `body` on the loop behind `target`, after everything this loop sent it before.
    /// Called on this loop's thread; batched per destination until this turn ends.
    public func send(to target: Inbox, _ body: @escaping @Sendable () -> Void) {
        let k = target.index
        if k >= outboxes.count {
            outboxes += Array(repeating: [], count: k + 1 - outboxes.count)
            outboxTargets += Array(repeating: nil, count: k + 1 - outboxTargets.count)
        }
        if outboxes[k].isEmpty { pendingOutboxes.append(k) }
        outboxTargets[k] = target
        outboxes[k].append(body)
    }

    private func sendOutboxes() {
        guard !pendingOutboxes.isEmpty else { return }
        for k in pendingOutboxes {
            outboxTargets[k]!.post(batch: outboxes[k])
            outboxes[k].removeAll(keepingCapacity: true)
        }
        pendingOutboxes.removeAll(keepingCapacity: true)
    }

    // MARK: timers and signals

    /// A timer firing every `ms` (first after `ms`) until cancelled.
    @discardableResult
    public func every(ms: UInt64, _ body: @escaping () -> Void) -> LoopTimer {
        LoopTimer(loop: self, firstMs: ms, repeatMs: max(1, ms), body)
    }

    /// A timer firing once after `ms`.
    @discardableResult
    public func after(ms: UInt64, _ body: @escaping () -> Void) -> LoopTimer {
        LoopTimer(loop: self, firstMs: ms, repeatMs: 0, body)
    }

    /// Runs `body` on this loop when the process gets `signum` (SIGTERM, SIGINT).
    public func onSignal(_ signum: Int32, _ body: @escaping () -> Void) {
        let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
        uv_signal_init(uv, handle)
        handle.pointee.data = Unmanaged.passRetained(Callback(body)).toOpaque()
        uv_signal_start(handle, { h, _ in
            Unmanaged<Callback>.fromOpaque(h!.pointee.data).takeUnretainedValue().body()
        }, signum)
        uv_unref(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
    }
}

final class Callback {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
