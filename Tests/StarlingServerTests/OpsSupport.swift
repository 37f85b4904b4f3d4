// What the operator tests share: files in a private directory, the binary run to its end,
// JSON log lines read back from a broker's stderr, and a token's claims decoded.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

/// A directory of this test alone, removed at the end.
final class Scratch {
    let dir: URL

    init() throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("starling-ops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    /// Writes `text` to `name`; returns its path.
    @discardableResult
    func file(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

/// 32+ bytes: a valid HS256 secret.
let testSecret = "ops-test-secret-0123456789abcdef-0123456789"

/// One parsed JSON log line.
struct LogLine {
    let fields: [String: JSONValue]
    let text: String
    subscript(_ key: String) -> String? {
        guard let v = fields[key] else { return nil }
        if let s = v.stringValue { return s }
        return JSONWriter.compact(v)
    }
}

/// Every line of a JSON log file; a line that is not a JSON object fails the test.
func jsonLogLines(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> [LogLine] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    var out: [LogLine] = []
    for l in text.split(separator: "\n") where !l.isEmpty {
        guard let v = try? JSONParser.parse(Array(l.utf8)), case .object(let members) = v else {
            XCTFail("not a JSON object log line: \(l)", file: file, line: line)
            continue
        }
        out.append(LogLine(fields: Dictionary(members, uniquingKeysWith: { $1 }), text: String(l)))
    }
    return out
}

/// Waits until a log line with `event` appears (the broker writes asynchronously to us).
func waitForLogEvent(_ path: String, _ event: String, timeout: Double = 5) -> LogLine? {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if let l = jsonLogLines(path).first(where: { $0["event"] == event }) { return l }
        usleep(50_000)
    } while Date() < deadline
    return nil
}

/// The payload of a JWT, parsed (no verification: the test checks what was signed).
func tokenPayload(_ token: String) throws -> JSONValue {
    let parts = token.split(separator: ".")
    guard parts.count == 3 else { throw ClientError("not a JWT: \(token)") }
    var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while b64.count % 4 != 0 { b64 += "=" }
    guard let data = Data(base64Encoded: b64) else { throw ClientError("bad base64 in \(token)") }
    return try JSONParser.parse(Array(data))
}

extension BrokerProcess {
    /// The whole /metrics text.
    func metricsText() throws -> String { try client.request("GET", "/metrics").text }

    /// A sample's value from /metrics: `name` with its labels exactly as rendered, e.g.
    /// `starling_auth_refusals_total{status="401"}`.
    func sample(_ series: String) throws -> Double {
        for line in try metricsText().split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.split(separator: " ").last!) ?? -1
        }
        throw ClientError("no sample \(series)")
    }
}

extension JSONValue {
    var intValue: Int? {
        if case .number(let n) = self { return Int(n) }
        return nil
    }
}

/// A redis-server of this test alone (ACL users, killed connections), on a free port.
final class PrivateRedis {
    let port: Int
    let dir: String
    private let process = Process()

    init() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        close(s)
        dir = NSTemporaryDirectory() + "starling-ops-redis-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first(where: FileManager.default.isExecutableFile) else {
            throw ClientError("redis-server is not installed (make deps installs it)")
        }
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while (try? cli("PING")) != "PONG" {
            guard Date() < deadline else { throw ClientError("redis-server on \(port) did not answer") }
            usleep(50_000)
        }
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }

    /// redis-cli against this server; its output without the trailing newline.
    @discardableResult
    func cli(_ args: String...) throws -> String {
        guard let path = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].first(where: FileManager.default.isExecutableFile) else {
            throw ClientError("redis-cli is not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["-p", "\(port)"] + args
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

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
