// The write path of a Connection: queued shared buffers go out in gathered writes, a
// direct `send`/`sendmsg` first (most writes complete at once) and `uv_write` for what the
// kernel did not take; nothing more is written to that socket until libuv calls back. The
// buffers stay alive in a WriteContext until then. Every write call of the broker is here.
//
// Why not `uv_try_write`: it does the same system call after checking the stream's state,
// and that state (connect request, write queue size, flags, descriptor) lies on three or
// four cache lines of the uv_tcp_t that nothing else of a delivery touches: callgrind's
// cache simulation put 3.6 first-level misses per delivery in it on the many-channels
// shape. The Connection knows that state itself: its socket was accepted (no connect
// request) and libuv holds none of its writes while `writeInFlight` is false. And
// `send(MSG_NOSIGNAL)` skips what `write` does for files (position lock, fsnotify): the
// floor program (../shared/limits) spent ~5 % less kernel time per delivery with it.
import CLibUV
import Glibc
import StarlingCore

extension Connection {
    /// Writes what is queued; `notify` lets a drained stream ask its delegate for more
    /// (off when called from inside `send`, which the delegate itself is calling).
    func flush(notify: Bool = true) {
        guard isOpen, !writeInFlight else { return }
        sealAnswers()
        while queue.hasPending {
            let count = min(queue.pendingCount, 64)
            let outcome: Int32 = withUnsafeTemporaryAllocation(of: uv_buf_t.self, capacity: count) { bufs in
                var k = 0
                var total = 0
                queue.forEachPending(maxItems: count) { p, n in
                    bufs[k] = uv_buf_init(UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: CChar.self), UInt32(n))
                    total += n
                    k += 1
                }
                let r = tryWrite(bufs.baseAddress!, k)
                if r < 0, r != UV_EAGAIN.rawValue { return r }
                let written = max(0, Int(r))
                if written > 0 { queue.consume(written); lastWriteMs = loop.nowMs }
                if written == total { return 0 }
                // The kernel buffer is full: hand the rest of this batch to uv_write and
                // wait for its callback before writing more.
                let remaining = count - countFullyWritten(written, bufs: bufs, k: k)
                return writeAsync(items: remaining)
            }
            if outcome < 0 { close(); return }
            if writeInFlight { return }
        }
        if notify { drained() }
    }

    /// `uv_try_write` without its look at the stream (the file's head says why): bytes the
    /// kernel took, `UV_EAGAIN` when it took none, or another negative libuv error.
    private func tryWrite(_ bufs: UnsafeMutablePointer<uv_buf_t>, _ k: Int) -> Int32 {
        precondition(!writeInFlight && k > 0, "direct writes only while libuv holds none of this socket's")
        while true {
            let n: Int
            if k == 1 {
                n = Glibc.send(fd, bufs.pointee.base, bufs.pointee.len, Int32(MSG_NOSIGNAL))
            } else {
                // uv_buf_t is laid out as struct iovec on Unix (libuv's uv-unix.h says so).
                var message = msghdr()
                message.msg_iov = UnsafeMutableRawPointer(bufs).assumingMemoryBound(to: iovec.self)
                message.msg_iovlen = k
                n = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            }
            if n >= 0 { return Int32(clamping: n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK, ENOBUFS: return UV_EAGAIN.rawValue
            default: return -errno
            }
        }
    }

    /// How many of the first `k` buffers `written` bytes covered completely.
    private func countFullyWritten(_ written: Int, bufs: UnsafeMutableBufferPointer<uv_buf_t>, k: Int) -> Int {
        var left = written
        var full = 0
        while full < k, left >= Int(bufs[full].len) { left -= Int(bufs[full].len); full += 1 }
        return full
    }

    private func writeAsync(items: Int) -> Int32 {
        let context = WriteContext(count: items)
        var k = 0
        queue.forEachPending(maxItems: items) { p, n in
            context.bufs[k] = uv_buf_init(UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: CChar.self), UInt32(n))
            k += 1
        }
        let detached = queue.detach(items)
        context.items = detached.items
        context.bytes = detached.bytes
        context.connection = self
        context.request.pointee.data = Unmanaged.passRetained(context).toOpaque()
        let r = uv_write(context.request, stream, context.bufs, UInt32(k)) { req, status in
            let ctx = Unmanaged<WriteContext>.fromOpaque(req!.pointee.data).takeRetainedValue()
            ctx.connection?.writeCompleted(bytes: ctx.bytes, status: status)
            ctx.connection = nil
        }
        if r < 0 {
            Unmanaged<WriteContext>.fromOpaque(context.request.pointee.data).release()
            queue.completeInFlight(detached.bytes)
            return r
        }
        writeInFlight = true
        loop.backlogged[ObjectIdentifier(self)] = self
        return 0
    }

    private func writeCompleted(bytes: Int, status: Int32) {
        queue.completeInFlight(bytes)
        writeInFlight = false
        guard isOpen else { return }
        if status < 0 { close(); return }
        lastWriteMs = loop.nowMs
        flush()
        if !writeInFlight { loop.backlogged[ObjectIdentifier(self)] = nil }
    }
}

/// Keeps a gathered write's buffers and the shared bytes they point into alive until
/// libuv calls back.
final class WriteContext {
    let request: UnsafeMutablePointer<uv_write_t>
    let bufs: UnsafeMutablePointer<uv_buf_t>
    var items: [SharedBytes] = []
    var bytes = 0
    var connection: Connection?

    init(count: Int) {
        request = .allocate(capacity: 1)
        bufs = .allocate(capacity: max(1, count))
    }

    deinit {
        request.deallocate()
        bufs.deallocate()
    }
}
