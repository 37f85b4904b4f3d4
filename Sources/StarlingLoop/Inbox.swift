// Inbox: how work reaches a loop from other threads. A mutex-guarded list and a uv_async
// handle; libuv folds any number of sends before the loop wakes into one callback, and
// senders batch per loop turn (`EventLoop.send`), so the lock is taken once per batch.
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// @unchecked Sendable: `post` is the only entry from other threads; it touches the list
/// under the mutex and calls uv_async_send, which libuv documents as thread-safe. The
/// rest runs on the owning loop's thread.
public final class Inbox: @unchecked Sendable {
    public let index: Int
    private let async: UnsafeMutablePointer<uv_async_t>
    private var lock = pthread_mutex_t()
    private var items: [@Sendable () -> Void] = []
    private var spare: [@Sendable () -> Void] = []

    init(index: Int) {
        self.index = index
        async = .allocate(capacity: 1)
        pthread_mutex_init(&lock, nil)
    }

    /// `keepsLoopRunning`: the loop runs until stopped, even with nothing else to do (a
    /// broker's loops answer other loops until the process exits); otherwise it returns
    /// from `run` once its other handles are closed (the load tool).
    func attach(to uv: UnsafeMutablePointer<uv_loop_t>, keepsLoopRunning: Bool) {
        uv_async_init(uv, async) { handle in
            Unmanaged<Inbox>.fromOpaque(handle!.pointee.data).takeUnretainedValue().drain()
        }
        async.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if !keepsLoopRunning { uv_unref(UnsafeMutableRawPointer(async).assumingMemoryBound(to: uv_handle_t.self)) }
    }

    /// Queues `body` to run on the owning loop soon. Safe from any thread.
    public func post(_ body: @escaping @Sendable () -> Void) { post(batch: [body]) }

    /// Queues a batch, in order, with one lock and one wake-up. Safe from any thread.
    public func post(batch: [@Sendable () -> Void]) {
        pthread_mutex_lock(&lock)
        items.append(contentsOf: batch)
        pthread_mutex_unlock(&lock)
        uv_async_send(async)
    }

    private func drain() {
        // Swap under the lock, run outside it; items posted meanwhile wake the loop again.
        pthread_mutex_lock(&lock)
        swap(&items, &spare)
        pthread_mutex_unlock(&lock)
        for item in spare { item() }
        spare.removeAll(keepingCapacity: true)
    }
}
