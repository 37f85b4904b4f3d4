// HTTPLoop: an event loop's HTTP side, shared by every connection on it: one read
// buffer, the connections with bytes to flush (flushed together when the loop turn ends,
// so writes coalesce), the connections waiting on a full kernel buffer, and the timer
// wheel for heartbeats and timeouts, driven by one repeating timer. All of it belongs to
// the loop's thread.
import CLibUV
import StarlingCore
import StarlingLoop

public final class HTTPLoop {
    public let loop: EventLoop
    /// Shared by every read on this loop: libuv fills it and the read callback consumes
    /// it before the next read, so idle connections own no read buffer.
    let readBuffer: UnsafeMutableRawPointer
    let readBufferSize = 64 * 1024
    var dirty: [Connection] = []
    /// Connections whose kernel buffer is full (a write is waiting in libuv): the only
    /// ones that can hold a large queue, so the global cap looks at these alone.
    var backlogged: [ObjectIdentifier: Connection] = [:]
    var wheel: TimerWheel<Connection>
    private var tickHandlers: [(UInt64) -> Void] = []
    private var ticker: LoopTimer?

    public init(loop: EventLoop) {
        self.loop = loop
        readBuffer = UnsafeMutableRawPointer.allocate(byteCount: readBufferSize, alignment: 16)
        wheel = TimerWheel(tickMs: 100, slotCount: 1024, nowMs: loop.nowMs)
        loop.onEveryTurn { [unowned self] in flushDirty() }
        ticker = loop.every(ms: 100) { [unowned self] in tick() }
        ticker?.unref()
    }

    /// The connections with a write waiting for the kernel, for the global queue cap.
    public var backloggedConnections: Dictionary<ObjectIdentifier, Connection>.Values { backlogged.values }

    /// Milliseconds of the loop's cached monotonic clock.
    public var nowMs: UInt64 { loop.nowMs }

    /// Runs `handler` on every wheel tick (about every 100 ms) with the loop time.
    public func onTick(_ handler: @escaping (UInt64) -> Void) { tickHandlers.append(handler) }

    func markDirty(_ c: Connection) {
        guard !c.isDirty else { return }
        c.isDirty = true
        dirty.append(c)
    }

    private func flushDirty() {
        // Flushing may mark connections dirty again (a drained replay fetches its next
        // page), so swap the list first and loop until it stays empty.
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for c in batch {
                c.isDirty = false
                c.flush()
            }
        }
    }

    private func tick() {
        let now = nowMs
        for c in wheel.advance(toMs: now) { c.timerFired(nowMs: now) }
        for h in tickHandlers { h(now) }
    }
}
