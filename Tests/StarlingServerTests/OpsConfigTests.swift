// Configuration from three sources (SPEC §8): a TOML or YAML file < STARLING_* variables <
// flags, proven on a running broker through a limit it enforces over a socket
// (max_event_bytes: 413 above it); secrets read from files; every bad key or value refused
// at start (exit 78) with a line that names it and where it came from.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

final class ConfigTests: XCTestCase {
    /// 200 when an event of `size` bytes fits max_event_bytes, 413 when it does not.
    func publishStatus(_ b: BrokerProcess, size: Int) throws -> Int {
        try b.client.publish(uniqueChannel(), json: "{\"data\":\"\(String(repeating: "x", count: size))\"}").status
    }

    func testFileThenEnvironmentThenFlagsLaterWins() throws {
        let s = try Scratch()
        for (name, text) in [("starling.toml", "max_event_bytes = 1000   # file\nretain_events = 50\n"),
                             ("starling.yaml", "max_event_bytes: 1000\nretain_events: 50\n")] {
            let file = try s.file(name, text)
            // File only: 1000.
            var b = try BrokerProcess(["--config", file])
            XCTAssertEqual(try publishStatus(b, size: 900), 200, name)
            XCTAssertEqual(try publishStatus(b, size: 1100), 413, name)
            b.terminate()
            // The environment overrides the file: 2000.
            b = try BrokerProcess(["--config", file], environment: ["STARLING_MAX_EVENT_BYTES": "2000"])
            XCTAssertEqual(try publishStatus(b, size: 1100), 200, name)
            XCTAssertEqual(try publishStatus(b, size: 2100), 413, name)
            b.terminate()
            // A flag overrides both: 3KiB.
            b = try BrokerProcess(["--config", file, "--max-event-bytes", "3KiB"], environment: ["STARLING_MAX_EVENT_BYTES": "2000"])
            XCTAssertEqual(try publishStatus(b, size: 3000), 200, name)
            XCTAssertEqual(try publishStatus(b, size: 3073), 413, name)
            b.terminate()
            // STARLING_CONFIG names the file too.
            b = try BrokerProcess([], environment: ["STARLING_CONFIG": file])
            XCTAssertEqual(try publishStatus(b, size: 1100), 413, name)
            b.terminate()
        }
        // `starling check` says where each value came from.
        let file = try s.file("c.toml", "max_event_bytes = 1000\nretain_events = 50\nheartbeat = \"5s\"\n")
        let r = try BrokerProcess.run(["check", "--config", file, "--retain-events", "70"],
                                      environment: ["STARLING_MAX_EVENT_BYTES": "2000"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("max_event_bytes = 2000"), r.stdout)
        XCTAssertTrue(r.stdout.contains("# environment STARLING_MAX_EVENT_BYTES"), r.stdout)
        XCTAssertTrue(r.stdout.contains("retain_events = 70"), r.stdout)
        XCTAssertTrue(r.stdout.contains("# flag --retain-events"), r.stdout)
        XCTAssertTrue(r.stdout.contains("heartbeat = 5"), r.stdout)
        XCTAssertTrue(r.stdout.contains("# file \(file)"), r.stdout)
    }

    func testEveryFlagHasAnEnvironmentVariable() throws {
        let help = try BrokerProcess.run(["serve", "--help"])
        XCTAssertEqual(help.status, 0)
        let text = help.stdout + help.stderr
        let flags = Set(text.matches(of: /--([a-z][a-z-]*)/).map { String($0.1) })
            .subtracting(["help", "version", "no-access-log"])
        XCTAssertGreaterThanOrEqual(flags.count, 25, "\(flags)")
        for flag in flags {
            let env = "STARLING_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
            XCTAssertTrue(text.contains("[\(env)]"), "--\(flag) has no \(env)")
        }
        // And each variable is read: STARLING_THREADS=0 is refused by name.
        try assertRefused([], ["STARLING_THREADS": "0"], naming: ["threads", "STARLING_THREADS"])
    }

    func testListsAreReplacedWholeByALaterSource() throws {
        let s = try Scratch()
        let file = try s.file("l.yaml", "public_subscribe:\n  - news.*\n  - weather\njwt_secret_file: [\(try s.file("k", testSecret + "\n"))]\n")
        // The environment's list replaces the file's: weather is no longer public.
        let b = try BrokerProcess(["--config", file], environment: ["STARLING_PUBLIC_SUBSCRIBE": "sport.*, chess"])
        defer { b.terminate() }
        XCTAssertEqual(try b.client.subscribe("sport.1").head.status, 200)
        XCTAssertEqual(try b.client.subscribe("chess").head.status, 200)
        XCTAssertEqual(try b.client.subscribe("weather").head.status, 401)
        XCTAssertEqual(try b.client.subscribe("news.1").head.status, 401)
    }

    func testSecretsComeFromFilesInEverySource() throws {
        let s = try Scratch()
        let secretFile = try s.file("jwt.secret", testSecret + "\n")  // the trailing newline is not part of it
        let good = try TokenSigner(hmacSecret: testSecret).token(publish: ["*"], subscribe: ["*"], expiresAt: Int(Date().timeIntervalSince1970) + 600)
        let forged = try TokenSigner(hmacSecret: String(testSecret.reversed())).token(publish: ["*"], expiresAt: Int(Date().timeIntervalSince1970) + 600)
        let ways: [(String, [String], [String: String])] = [
            ("flag", ["--jwt-secret-file", secretFile], [:]),
            ("environment", [], ["STARLING_JWT_SECRET_FILE": secretFile]),
            ("file", ["--config", try s.file("s.toml", "jwt_secret_file = [\"\(secretFile)\"]\n")], [:]),
            ("environment value", [], ["STARLING_JWT_SECRET": testSecret]),
        ]
        for (way, args, env) in ways {
            let b = try BrokerProcess(args, environment: env)
            defer { b.terminate() }
            let ch = uniqueChannel()
            func publish(_ token: String?) throws -> Int {
                try b.client.request("POST", "/v1/channels/\(ch)/events",
                                     headers: [("Content-Type", "text/plain")] + (token.map { [("Authorization", "Bearer \($0)")] } ?? []),
                                     body: Array("x".utf8)).status
            }
            XCTAssertEqual(try publish(good), 200, way)
            XCTAssertEqual(try publish(forged), 401, way)
            XCTAssertEqual(try publish(nil), 401, way)
        }
    }

    /// Starts `serve` expecting it to refuse: exit 78 and one line naming `names`.
    func assertRefused(_ args: [String], _ env: [String: String] = [:], naming names: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try BrokerProcess.run(["serve", "--listen", "127.0.0.1:0"] + args, environment: env, timeout: 10)
        XCTAssertEqual(r.status, 78, "\(args) \(env): \(r.stdout) \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("starling: configuration error: "), r.stderr, file: file, line: line)
        for n in names { XCTAssertTrue(r.stderr.contains(n), "'\(n)' not in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stdout.contains("listening"), file: file, line: line)
    }

    func testUnknownKeysAreErrorsNamingTheKey() throws {
        let s = try Scratch()
        try assertRefused(["--config", try s.file("a.toml", "retain_events = 5\nclient_bufer = 1024\n")],
                          naming: ["client_bufer", "a.toml:2", "did you mean client_buffer"])
        try assertRefused(["--config", try s.file("b.yaml", "retain-events: 5\n")], naming: ["retain-events", "did you mean retain_events"])
        try assertRefused(["--config", try s.file("c.yaml", "redis:\n  url: redis://x\n")], naming: ["redis", "nested"])
        try assertRefused(["--config", try s.file("d.toml", "[server]\nlisten = \":80\"\n")], naming: ["d.toml:1", "tables"])
        try assertRefused(["--config", try s.file("e.toml", "config = \"other.toml\"\n")], naming: ["config", "unknown setting"])
        try assertRefused(["--config", try s.file("f.json", "{}")], naming: ["config", ".toml, .yaml or .yml"])
        try assertRefused(["--config", s.path("missing.toml")], naming: ["config", "cannot read", "missing.toml"])
        try assertRefused([], ["STARLING_CLIENT_BUFER": "1024"], naming: ["STARLING_CLIENT_BUFER", "did you mean STARLING_CLIENT_BUFFER"])
        // The old unit's catch-all variable is gone, and says so.
        try assertRefused([], ["STARLING_OPTS": "--heartbeat 5"], naming: ["STARLING_OPTS", "unknown environment variable"])
        // Secrets have no flag.
        let r = try BrokerProcess.run(["serve", "--redis-password", "x"])
        XCTAssertNotEqual(r.status, 0)
    }

    func testBadValuesAreErrorsNamingTheKeyAndSource() throws {
        let s = try Scratch()
        let cases: [([String], [String: String], [String])] = [
            (["--log-level", "loud"], [:], ["log_level", "'loud'", "flag --log-level"]),
            ([], ["STARLING_LOG_LEVEL": "verbose"], ["log_level", "environment STARLING_LOG_LEVEL"]),
            (["--config", try s.file("l.toml", "log_level = \"chatty\"\n")], [:], ["log_level", "'chatty'", "l.toml"]),
            (["--log-format", "xml"], [:], ["log_format", "'xml'"]),
            (["--client-buffer", "lots"], [:], ["client_buffer", "'lots'", "size in bytes"]),
            ([], ["STARLING_MAX_CONNECTIONS": "-5"], ["max_connections", "STARLING_MAX_CONNECTIONS"]),
            (["--heartbeat", "soon"], [:], ["heartbeat", "duration"]),
            (["--heartbeat", "0"], [:], ["heartbeat", "below"]),
            (["--turn-pace", "200ms"], [:], ["turn_pace", "above the most allowed, 100ms"]),
            ([], ["STARLING_TURN_PACE": "soon"], ["turn_pace", "STARLING_TURN_PACE", "duration"]),
            (["--redis", "redis://127.0.0.1:1/0", "--redis-pace", "200ms"], [:], ["redis_pace", "above the most allowed, 100ms"]),
            (["--redis-pace", "1ms"], [:], ["redis_pace", "needs redis", "memory engine"]),
            (["--redis-cluster", "redis://127.0.0.1:1", "--redis-pace", "1ms"], [:], ["redis_pace", "not redis_cluster"]),
            ([], ["STARLING_REDIS_PACE": "soon"], ["redis_pace", "STARLING_REDIS_PACE", "duration"]),
            (["--retain-seconds", "1.5"], [:], ["retain_seconds", "whole seconds"]),
            (["--max-event-bytes", "0"], [:], ["max_event_bytes", "below"]),
            (["--cors-origin", "example.com"], [:], ["cors_origin", "'example.com'"]),
            (["--access-log"], ["STARLING_ACCESS_LOG": "sometimes"], []),  // the flag wins: starts
            ([], ["STARLING_ACCESS_LOG": "sometimes"], ["access_log", "'sometimes'"]),
            (["--jwt-cookie", "a b"], [:], ["jwt_cookie"]),
            (["--listen", "localhost"], [:], ["listen", "no port"]),
            (["--listen", "::1:80"], [:], ["listen", "without [ ]"]),
            (["--listen", "[::1:80"], [:], ["listen"]),
            (["--listen", "no-such-host.invalid:80"], [:], ["listen", "does not resolve"]),
            (["--listen", "127.0.0.1:70000"], [:], ["listen", "65535"]),
            (["--redis", "http://127.0.0.1:6379"], [:], ["redis", "redis://"]),
            (["--redis", "rediss://:pw@127.0.0.1:6380/0"], [:], ["redis", "TLS", "hiredis 0.14"]),
            (["--redis", "redis://alice@127.0.0.1:6379/0"], [:], ["redis", "alice", "password"]),
            (["--jwt-secret-file", s.path("nope")], [:], ["jwt_secret_file", "cannot read", "nope"]),
            (["--jwt-secret-file", try s.file("empty", "\n")], [:], ["jwt_secret_file", "is empty"]),
            (["--jwt-secret-file", try s.file("short", "short\n")], [:], ["jwt_secret_file", "at least 32"]),
            ([], ["STARLING_JWT_SECRET": "short"], ["jwt_secret", "at least 32", "STARLING_JWT_SECRET"]),
            (["--redis-password-file", s.path("nope")], [:], ["redis_password_file", "cannot read"]),
            (["--jwt-public-key", s.path("nokey.pem")], [:], ["jwt_public_key", "cannot read"]),
            (["--public-subscribe", "bad pattern"], [:], ["public-subscribe", "bad pattern"]),
            (["--config", try s.file("q.toml", "retain_events = \"many\"\n")], [:], ["retain_events", "'many'", "q.toml"]),
            (["--config", try s.file("n.yaml", "retain_events:\n")], [:], ["retain_events", "no value"]),
            (["--config", try s.file("t.toml", "retain_events = 5 6\n")], [:], ["t.toml:1"]),
        ]
        for (args, env, names) in cases {
            if names.isEmpty {
                let b = try BrokerProcess(args, environment: env)
                b.terminate()
            } else {
                try assertRefused(args, env, naming: names)
            }
        }
    }

    func testListenTakesHostNamesPortOnlyAndIPv6Literals() throws {
        for (listen, bound) in [("localhost:0", "127.0.0.1"), (":0", "0.0.0.0"), ("[::1]:0", "[::1]")] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: BrokerProcess.binaryPath)
            p.arguments = ["serve", "--listen", listen]
            p.environment = BrokerProcess.childEnvironment([:])
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            defer { p.terminate(); p.waitUntilExit() }
            var seen = Data()
            let deadline = Date().addingTimeInterval(10)
            while !String(decoding: seen, as: UTF8.self).contains("\n"), Date() < deadline {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen.append(chunk)
            }
            let line = String(decoding: seen, as: UTF8.self)
            XCTAssertTrue(line.hasPrefix("starling listening on http://\(bound):"), "\(listen): \(line)")
            let url = try XCTUnwrap(line.split(separator: " ").first { $0.hasPrefix("http://") }, line)
            let port = try XCTUnwrap(Int(url.split(separator: ":").last!), line)
            // Reachable on loopback over the family it bound.
            if bound == "[::1]" {
                XCTAssertTrue(try ipv6Get(port: port, "/healthz").hasPrefix("HTTP/1.1 200"), listen)
            } else {
                let c = try BlockingConnection(port: port)
                try c.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                XCTAssertEqual(try HTTPResponse.read(from: c).status, 200, listen)
            }
        }
    }

    /// A GET to [::1]:port with a plain IPv6 socket (the test client speaks IPv4); the
    /// answer's first bytes.
    func ipv6Get(port: Int, _ path: String) throws -> String {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in6()
        addr.sin6_family = sa_family_t(AF_INET6)
        addr.sin6_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET6, "::1", &addr.sin6_addr)
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard r == 0 else { throw ClientError("connect [::1]:\(port): errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buf, buf.count, 0)
        return String(decoding: buf[0..<max(0, n)], as: UTF8.self)
    }
}
