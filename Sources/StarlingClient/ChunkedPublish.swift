// ChunkedPublish: a streaming publish as a worker makes it — one chunked POST whose body
// stays open while lines are sent — and TokenWorker, which sends a token line on its own
// thread every few milliseconds (as a model generates) while the caller reads the answer.
import Foundation

/// A chunked POST with its head sent; `line` sends one chunk, `end` the last one.
public final class ChunkedPublish {
    public let connection: BlockingConnection

    public init(port: Int, path: String, type: String = "application/x-ndjson", headers: [(String, String)] = []) throws {
        connection = try BlockingConnection(port: port)
        var head = "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: \(type)\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        try connection.send(head + "Transfer-Encoding: chunked\r\n\r\n")
    }

    public func chunk(_ text: String) throws { try Self.chunk(connection, Array(text.utf8)) }

    public func end() throws { try connection.send("0\r\n\r\n") }

    static func chunk(_ c: BlockingConnection, _ bytes: [UInt8]) throws {
        try c.send(Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10])
    }
}

/// Streams `{"event":"token","data":"tN "}` lines to a channel every `everyMs` ms from its
/// own thread until `stop()` or a failed write. The test thread reads `connection`.
// @unchecked Sendable: the writer thread touches only the socket (send) and `sent`/`stopped`
// under the lock; the reader thread only reads from the socket.
public final class TokenWorker: @unchecked Sendable {
    public let publish: ChunkedPublish
    public var connection: BlockingConnection { publish.connection }
    private let lock = NSLock()
    private var stopped = false
    private var sentCount = 0
    private var finished = false

    public init(port: Int, channel: String, everyMs: Int, headers: [(String, String)] = []) throws {
        publish = try ChunkedPublish(port: port, path: "/v1/channels/\(channel)/events", headers: headers)
        Thread.detachNewThread { [self] in
            let c = connection
            var k = 0
            while !isStopped {
                k += 1
                do { try ChunkedPublish.chunk(c, Array("{\"event\":\"token\",\"data\":\"t\(k) \"}\n".utf8)) } catch { break }
                lock.withLock { sentCount = k }
                usleep(useconds_t(everyMs * 1000))
            }
            lock.withLock { finished = true }
        }
    }

    public var isStopped: Bool { lock.withLock { stopped } }
    /// The writer thread has left: stopped, or a write failed (the broker closed).
    public var writerEnded: Bool { lock.withLock { finished } }
    public var sent: Int { lock.withLock { sentCount } }

    /// Stops the writer and waits for its thread to leave the socket.
    public func stop() {
        lock.withLock { stopped = true }
        while !lock.withLock({ finished }) { usleep(1000) }
    }
}
