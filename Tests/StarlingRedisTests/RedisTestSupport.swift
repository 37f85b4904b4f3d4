// What the Redis engine tests share: a private redis-server they may kill and restart
// (never the suite's shared one), redis-cli calls, and publishing helpers. A test that
// needs Redis fails when it is missing; none skips.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

/// A redis-server of this test alone, on a free loopback port, in its own directory.
final class RedisServer {
    let port: Int
    let dir: URL
    let appendOnly: Bool
    private var process: Process?

    init(appendOnly: Bool) throws {
        port = try freePort()
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("starling-redis-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        self.appendOnly = appendOnly
        try start()
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try executable("redis-server"))
        p.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", dir.path, "--save", "",
                       "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
                       "--logfile", dir.appendingPathComponent("redis.log").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try? cli("PING")) == "PONG" { return }
            usleep(50_000)
        }
        throw ClientError("redis-server on port \(port) did not answer PING")
    }

    /// SIGKILL: no shutdown save; with appendfsync always every acknowledged write is on disk.
    func kill() {
        guard let p = process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    func cli(_ args: String...) throws -> String { try redisCLI(["-p", "\(port)"] + args) }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// The suite's shared Redis (STARLING_TEST_REDIS): `redis-cli -u URL args…`.
func sharedRedisCLI(_ args: String...) throws -> String { try sharedRedisCLI(args) }

func sharedRedisCLI(_ args: [String]) throws -> String {
    try redisCLI(["-u", try BrokerProcess.redisURL()] + args)
}

/// Runs redis-cli; its output without the trailing newline. Errors come back as text.
func redisCLI(_ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try executable("redis-cli"))
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    var text = String(decoding: data, as: UTF8.self)
    while text.hasSuffix("\n") { text.removeLast() }
    return text
}

func executable(_ name: String) throws -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw ClientError("\(name) is not installed (make deps installs redis-server)")
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError("socket: \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw ClientError("bind: \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// The repository root, found from this file's path (the tests read ops/redis/).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

extension BrokerProcess {
    /// Publishes events "prefix-N" for N in `numbers`, `batch` per request; returns their IDs.
    @discardableResult
    func publish(_ channel: String, _ numbers: ClosedRange<Int>, prefix: String = "e", batch: Int = 1) throws -> [String] {
        var ids: [String] = []
        var n = numbers.lowerBound
        while n <= numbers.upperBound {
            let k = min(batch, numbers.upperBound - n + 1)
            let body = "[" + (n..<(n + k)).map { "{\"data\":\"\(prefix)-\($0)\"}" }.joined(separator: ",") + "]"
            let r = try client.publish(channel, json: body)
            guard r.status == 200 else { throw ClientError("publish answered \(r.status): \(r.text)") }
            let v = try JSONParser.parse(r.body)
            guard let first = v["first"]?.stringValue.flatMap({ EventID($0) }) else { throw ClientError("publish: \(r.text)") }
            // IDs of one batch are consecutive in the channel.
            for i in 0..<k { ids.append(EventID(ms: first.ms, seq: first.seq + UInt64(i)).description) }
            n += k
        }
        return ids
    }

    /// Waits until /readyz answers `status`.
    func waitReady(_ status: Int = 200, timeout: Double = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = try? client.request("GET", "/readyz", timeout: 1), r.status == status { return }
            usleep(50_000)
        }
        throw ClientError("/readyz did not answer \(status) within \(timeout) s")
    }
}

/// Reads events until `count` data events arrived or the stream stalls; fails on a
/// duplicate ID or an ID that goes backwards.
func readInOrder(_ s: SSEStream, count: Int, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
    var data: [String] = []
    var last: EventID?
    while data.count < count, let m = try s.next(timeout: timeout) {
        guard m.event != "starling.gap" else { XCTFail("unexpected gap: \(m.data)", file: file, line: line); continue }
        if let idText = m.id, let id = EventID(idText) {
            if let last, id <= last { XCTFail("ID \(id) after \(last): duplicate or reordered", file: file, line: line) }
            last = id
        }
        data.append(m.data)
    }
    return data
}

func numbered(_ range: ClosedRange<Int>, prefix: String = "e") -> [String] { range.map { "\(prefix)-\($0)" } }
