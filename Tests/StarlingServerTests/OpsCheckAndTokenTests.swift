// `starling check` (good and broken configurations, Redis reached or not, secrets never
// printed), `starling token` (a token the broker accepts with exactly the rights asked
// for) and `starling --version`.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class CheckAndTokenTests: XCTestCase {
    func testCheckPassesAGoodConfigurationAndMasksSecrets() throws {
        let s = try Scratch()
        let secretFile = try s.file("jwt.secret", testSecret + "\n")
        let redis = try BrokerProcess.redisURL()
        let config = try s.file("starling.yaml", """
            listen: "localhost:8089"
            redis: \(redis)
            jwt_secret_file: [\(secretFile)]
            log_format: json
            """)
        let inline = "inline-secret-" + String(repeating: "z", count: 30)
        let r = try BrokerProcess.run(["check", "--config", config], environment: ["STARLING_JWT_SECRET": inline])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("configuration OK"), r.stdout)
        XCTAssertTrue(r.stdout.contains("ok: keys: 2 HS256 secret(s)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("ok: listen localhost:8089 binds 127.0.0.1 port 8089"), r.stdout)
        XCTAssertTrue(r.stdout.contains("ok: redis "), r.stdout)
        XCTAssertTrue(r.stdout.contains("jwt_secret = [\"***\"]"), r.stdout)
        XCTAssertTrue(r.stdout.contains("jwt_secret_file = [\"\(secretFile)\"]"), r.stdout)
        for secret in [testSecret, inline] {
            XCTAssertFalse((r.stdout + r.stderr).contains(secret), "a secret was printed")
        }
    }

    func testCheckFailsABrokenConfigurationWithOneLinePerProblem() throws {
        let s = try Scratch()
        // A bad value: exit 1, the key named.
        var r = try BrokerProcess.run(["check", "--config", try s.file("a.toml", "client_buffer = \"huge\"\n")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("problem: client_buffer: 'huge' is not a size in bytes"), r.stdout)
        // A key that does not verify as one: exit 1.
        r = try BrokerProcess.run(["check", "--jwt-public-key", try s.file("k.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("problem: keys: --jwt-public-key #1"), r.stdout)
        // Redis not there: exit 1.
        let closed = try freeLoopbackPort()
        r = try BrokerProcess.run(["check", "--redis", "redis://127.0.0.1:\(closed)/0"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("problem: redis: cannot connect to redis://127.0.0.1:\(closed)/0"), r.stdout)
        // Redis there, but the password is wrong (the suite's Redis has none): exit 1,
        // and the password appears nowhere.
        let shared = try BrokerProcess.redisURL().replacingOccurrences(of: "redis://", with: "redis://:hunter2-wrong@")
        r = try BrokerProcess.run(["check", "--redis", shared])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("problem: redis: AUTH refused"), r.stdout)
        XCTAssertTrue(r.stdout.contains("redis = \"redis://:***@"), r.stdout)
        XCTAssertFalse((r.stdout + r.stderr).contains("hunter2"))
    }

    func testTokenIsAcceptedWithExactlyTheRightsAskedFor() throws {
        let s = try Scratch()
        let secretFile = try s.file("jwt.secret", testSecret + "\n")
        let r = try BrokerProcess.run(["token", "--secret-file", secretFile, "--publish", "chat.*", "--subscribe", "chat.42",
                                       "--cancel", "chat.42", "--ttl", "1h", "--sub", "alice"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let token = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(token.split(separator: ".").count, 3, token)
        let payload = try tokenPayload(token)
        XCTAssertEqual(payload["sub"]?.stringValue, "alice")
        let now = Int(Date().timeIntervalSince1970)
        let exp = payload["exp"]!.intValue!
        XCTAssertTrue((now + 3590)...(now + 3610) ~= exp, "exp \(exp) is an hour from now")
        XCTAssertEqual(payload["starling"]?["publish"], .array([.string("chat.*")]))
        XCTAssertEqual(payload["starling"]?["subscribe"], .array([.string("chat.42")]))
        XCTAssertEqual(payload["starling"]?["cancel"], .array([.string("chat.42")]))

        let b = try BrokerProcess(["--jwt-secret-file", secretFile])
        defer { b.terminate() }
        func publish(_ ch: String) throws -> Int {
            try b.client.request("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "text/plain"), ("Authorization", "Bearer \(token)")],
                                 body: Array("hi".utf8)).status
        }
        func subscribe(_ ch: String) throws -> Int {
            try b.client.subscribe(ch, headers: [("Authorization", "Bearer \(token)")]).head.status
        }
        XCTAssertEqual(try publish("chat.42"), 200)
        XCTAssertEqual(try publish("chat.7"), 200)
        XCTAssertEqual(try publish("chatroom"), 403)
        XCTAssertEqual(try publish("news"), 403)
        XCTAssertEqual(try subscribe("chat.42"), 200)
        XCTAssertEqual(try subscribe("chat.43"), 403)
        // The same token from a broker with another secret: 401.
        let other = try BrokerProcess(["--jwt-secret-file", try s.file("other", String(testSecret.reversed()))])
        defer { other.terminate() }
        XCTAssertEqual(try other.client.subscribe("chat.42", headers: [("Authorization", "Bearer \(token)")]).head.status, 401)
    }

    func testTokenRefusesBadInput() throws {
        let s = try Scratch()
        let secretFile = try s.file("jwt.secret", testSecret)
        for args in [["token", "--publish", "a"],                                               // no key
                     ["token", "--secret-file", secretFile, "--publish", "bad channel"],       // bad pattern
                     ["token", "--secret-file", secretFile, "--ttl", "0"],                     // no lifetime
                     ["token", "--secret-file", secretFile, "--ttl", "soon"],
                     ["token", "--secret-file", try s.file("short", "short")],                 // short secret
                     ["token", "--secret-file", s.path("missing")]] {
            let r = try BrokerProcess.run(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stdout.isEmpty, "\(args) printed \(r.stdout)")
        }
    }

    func testVersionIsPrintedAndExported() throws {
        let r = try BrokerProcess.run(["--version"])
        XCTAssertEqual(r.status, 0)
        let version = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(version.isEmpty)
        let b = try BrokerProcess()
        defer { b.terminate() }
        XCTAssertEqual(try b.sample("starling_build_info{version=\"\(version)\"}"), 1)
    }

    func freeLoopbackPort() throws -> Int {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
