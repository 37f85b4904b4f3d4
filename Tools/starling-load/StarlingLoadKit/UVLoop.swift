// UVLoop: the load tool's thin wrapper over one libuv loop — run it, wake on timers, run
// a hook once per loop turn. With HTTPClientConnection.swift, the only file allowed to
// hold unsafe pointers, Unmanaged and C callbacks; everything above it is safe Swift.
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

public final class UVLoop {
    let uv: UnsafeMutablePointer<uv_loop_t>
    /// One read buffer for every connection: libuv fills it and the read callback
    /// consumes it before the next read, so 20,000 idle sockets own no read buffer.
    let readBuffer: UnsafeMutableRawPointer
    let readBufferSize = 256 * 1024
    private var turnHooks: [() -> Void] = []
    private var prepare: UnsafeMutablePointer<uv_prepare_t>?

    public init() {
        uv = .allocate(capacity: 1)
        uv_loop_init(uv)
        readBuffer = .allocate(byteCount: readBufferSize, alignment: 16)
        uv.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        uv_loop_close(uv)
        uv.deallocate()
        readBuffer.deallocate()
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>!) -> UVLoop {
        Unmanaged<UVLoop>.fromOpaque(loop.pointee.data).takeUnretainedValue()
    }

    /// Runs until every handle is closed.
    public func run() { uv_run(uv, UV_RUN_DEFAULT) }

    /// Milliseconds of the loop's cached monotonic clock.
    public var nowMs: UInt64 { uv_now(uv) }

    /// Runs `body` once per loop turn, just before the loop blocks for I/O: where the
    /// publishers top up their pipelines and flush one write each.
    public func onEveryTurn(_ body: @escaping () -> Void) {
        turnHooks.append(body)
        guard prepare == nil else { return }
        let p = UnsafeMutablePointer<uv_prepare_t>.allocate(capacity: 1)
        uv_prepare_init(uv, p)
        p.pointee.data = uv.pointee.data
        uv_prepare_start(p) { h in
            for hook in UVLoop.from(h!.pointee.loop).turnHooks { hook() }
        }
        prepare = p
    }

    /// Stops the per-turn hooks and closes their handle, so `run` can return.
    public func stopTurnHooks() {
        turnHooks.removeAll()
        guard let p = prepare else { return }
        prepare = nil
        uv_prepare_stop(p)
        uv_close(UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
    }

    /// A timer firing every `ms` (first after `ms`) until cancelled.
    public func every(ms: UInt64, _ body: @escaping () -> Void) -> UVTimer {
        UVTimer(loop: self, firstMs: ms, repeatMs: ms, body)
    }

    /// A timer firing once after `ms`.
    @discardableResult
    public func after(ms: UInt64, _ body: @escaping () -> Void) -> UVTimer {
        UVTimer(loop: self, firstMs: ms, repeatMs: 0, body)
    }
}

/// A libuv timer; a one-shot closes itself after firing.
public final class UVTimer {
    private var handle: UnsafeMutablePointer<uv_timer_t>?
    private let body: () -> Void
    private let repeats: Bool

    init(loop: UVLoop, firstMs: UInt64, repeatMs: UInt64, _ body: @escaping () -> Void) {
        self.body = body
        repeats = repeatMs > 0
        let h = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop.uv, h)
        // The loop keeps the timer alive until it is closed.
        h.pointee.data = Unmanaged.passRetained(self).toOpaque()
        handle = h
        uv_timer_start(h, { h in
            let t = Unmanaged<UVTimer>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            t.body()
            if !t.repeats { t.cancel() }
        }, firstMs, repeatMs)
    }

    public func cancel() {
        guard let h = handle else { return }
        handle = nil
        uv_timer_stop(h)
        uv_close(UnsafeMutableRawPointer(h).assumingMemoryBound(to: uv_handle_t.self)) { h in
            Unmanaged<UVTimer>.fromOpaque(h!.pointee.data).release()
            h!.deallocate()
        }
    }
}

/// Process-level facts the tool needs: a clock two processes on one machine share, and
/// the file-descriptor limit.
public enum System {
    /// CLOCK_MONOTONIC in nanoseconds: the publisher stamps it, the subscriber subtracts it.
    public static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
    @discardableResult
    public static func raiseFileLimit() -> Int {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        return Int(lim.rlim_cur)
    }

    public static var stderrIsTerminal: Bool { isatty(2) != 0 }
}

extension System {
    /// Unbuffered, so a progress line shows at once.
    public static func writeStderr(_ s: String) {
        var s = s
        s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
