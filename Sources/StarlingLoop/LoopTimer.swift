// LoopTimer: the one libuv timer type. Repeating or one-shot; a one-shot closes itself
// after firing; `cancel` stops and frees it. The loop keeps it alive until then.
import CLibUV

public final class LoopTimer {
    private var handle: UnsafeMutablePointer<uv_timer_t>?
    private let body: () -> Void
    private let repeats: Bool

    init(loop: EventLoop, firstMs: UInt64, repeatMs: UInt64, _ body: @escaping () -> Void) {
        self.body = body
        repeats = repeatMs > 0
        let h = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop.uv, h)
        h.pointee.data = Unmanaged.passRetained(self).toOpaque()
        handle = h
        uv_timer_start(h, { h in
            let t = Unmanaged<LoopTimer>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            if !t.repeats { t.cancel() }
            t.body()
        }, firstMs, repeatMs)
    }

    /// Whether the timer is still scheduled.
    public var isActive: Bool { handle != nil }

    /// Lets the loop exit while only this timer is left (housekeeping timers).
    public func unref() {
        if let h = handle { uv_unref(UnsafeMutableRawPointer(h).assumingMemoryBound(to: uv_handle_t.self)) }
    }

    public func cancel() {
        guard let h = handle else { return }
        handle = nil
        uv_timer_stop(h)
        uv_close(UnsafeMutableRawPointer(h).assumingMemoryBound(to: uv_handle_t.self)) { h in
            Unmanaged<LoopTimer>.fromOpaque(h!.pointee.data).release()
            h!.deallocate()
        }
    }
}
