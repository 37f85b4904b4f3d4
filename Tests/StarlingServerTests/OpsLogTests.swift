// JSON logs (--log-format json), read back and parsed: one line per auth refusal (the
// token's verified sub, never the token), slow-consumer cut, global-cap shed, drain, Redis
// loss and reconnect, and the start-up configuration with secrets masked; the access log
// without query strings. No line and no metric carries a secret or a token's signature.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

final class LogTests: XCTestCase {
    var now: Int { Int(Date().timeIntervalSince1970) }

    func testAuthRefusalsAreLoggedWithTheSubjectNeverTheToken() throws {
        let s = try Scratch()
        let secretFile = try s.file("jwt.secret", testSecret + "\n")
        let log = s.path("broker.log")
        let b = try BrokerProcess(["--jwt-secret-file", secretFile, "--log-format", "json", "--access-log"], logFile: log)
        defer { b.terminate() }
        let signer = try TokenSigner(hmacSecret: testSecret)
        let expired = try signer.token(publish: ["*"], subscribe: ["*"], expiresAt: now - 600, subject: "alice")
        let forged = try TokenSigner(hmacSecret: String(testSecret.reversed())).token(publish: ["*"], expiresAt: now + 600, subject: "mallory")
        let narrow = try signer.token(publish: ["news.*"], subscribe: ["news.*"], expiresAt: now + 600, subject: "bob")
        let ch = uniqueChannel("secret-room")
        func publish(_ token: String) throws -> Int {
            try b.client.request("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "text/plain"), ("Authorization", "Bearer \(token)")],
                                 body: Array("x".utf8)).status
        }
        XCTAssertEqual(try publish(expired), 401)
        XCTAssertEqual(try publish(forged), 401)
        XCTAssertEqual(try publish(narrow), 403)
        // A subscriber with its token in the query string (EventSource), allowed.
        let sub = try b.client.subscribe("news.1", query: "?access_token=\(narrow)")
        XCTAssertEqual(sub.head.status, 200)
        try b.client.request("POST", "/v1/channels/news.1/events", headers: [("Content-Type", "text/plain"), ("Authorization", "Bearer \(narrow)")],
                             body: Array("hello".utf8))
        XCTAssertEqual(try sub.next()?.data, "hello")
        sub.connection.shutdownWrite()
        _ = try? sub.readToEnd(timeout: 1)

        XCTAssertNotNil(waitForLogEvent(log, "access"))
        usleep(300_000)
        let lines = jsonLogLines(log)
        let refusals = lines.filter { $0["event"] == "auth_refused" }
        XCTAssertEqual(refusals.count, 3, refusals.map(\.text).joined(separator: "\n"))
        XCTAssertEqual(refusals.map { $0["sub"] }, ["alice", "-", "bob"], "the verified sub; a forged token's claim is not believed")
        XCTAssertEqual(refusals.map { $0["status"] }, ["401", "401", "403"])
        XCTAssertEqual(refusals.map { $0["route"] }, ["publish", "publish", "publish"])
        XCTAssertTrue(refusals[0]["reason"]!.contains("expired"))
        XCTAssertEqual(try b.sample("starling_auth_refusals_total{status=\"401\"}"), 2)
        XCTAssertEqual(try b.sample("starling_auth_refusals_total{status=\"403\"}"), 1)

        // The access log: status, route, channel, bytes, duration; never the query string.
        let access = lines.filter { $0["event"] == "access" }
        XCTAssertTrue(access.contains { $0["status"] == "403" && $0["channel"] == ch && $0["route"] == "publish" })
        let stream = try XCTUnwrap(access.first { $0["stream"] == "true" }, access.map(\.text).joined(separator: "\n"))
        XCTAssertEqual(stream["channel"], "news.1")
        XCTAssertEqual(stream["route"], "subscribe")
        XCTAssertGreaterThan(Int(stream["bytes"] ?? "0") ?? 0, 0)
        XCTAssertNotNil(Double(stream["duration_ms"] ?? ""))

        // Nothing secret anywhere: not the secret, not a token, not a signature.
        let everything = (try String(contentsOfFile: log, encoding: .utf8)) + (try b.metricsText())
        for token in [expired, forged, narrow] {
            XCTAssertFalse(everything.contains(token))
            XCTAssertFalse(everything.contains(String(token.split(separator: ".")[2])), "a token signature was logged")
        }
        XCTAssertFalse(everything.contains(testSecret))
        XCTAssertFalse(everything.contains("access_token"))
    }

    func testStartupLineCarriesTheConfigurationWithSecretsMasked() throws {
        let s = try Scratch()
        let log = s.path("broker.log")
        let b = try BrokerProcess(["--log-format", "json", "--jwt-secret", testSecret],
                                  environment: ["STARLING_REDIS_PASSWORD": "hunter2-pw", "STARLING_HEARTBEAT": "7s"], logFile: log)
        defer { b.terminate() }
        let line = try XCTUnwrap(waitForLogEvent(log, "config"))
        XCTAssertEqual(line["heartbeat"], "7")
        XCTAssertEqual(line["jwt_secret"], "[\"***\"]")
        XCTAssertEqual(line["version"], try BrokerProcess.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        // --jwt-secret on the command line earns a warning.
        let warning = try XCTUnwrap(waitForLogEvent(log, "config_warning"))
        XCTAssertTrue(warning["msg"]!.contains("--jwt-secret-file"))
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertFalse(text.contains(testSecret))
        XCTAssertFalse(text.contains("hunter2"))
    }

    func testSlowConsumerCutAndGlobalCapShedAreLogged() throws {
        let s = try Scratch()
        // A stalled subscriber over a 64 KiB client buffer: cut.
        var log = s.path("slow.log")
        var b = try BrokerProcess(["--log-format", "json", "--client-buffer", "65536"], logFile: log)
        let ch = uniqueChannel("slow")
        let stalled = try b.client.subscribe(ch, receiveBuffer: 4096)
        let pad = String(repeating: "s", count: 4000)
        for _ in 0..<40 where try b.metric("starling_slow_consumer_disconnects_total") == 0 {
            try b.publishNumbered(ch, count: 50, prefix: pad)
        }
        let cut = try XCTUnwrap(waitForLogEvent(log, "slow_consumer_disconnect"))
        XCTAssertEqual(cut["level"], "warning")
        XCTAssertEqual(cut["channel"], ch)
        XCTAssertEqual(cut["client_buffer"], "65536")
        XCTAssertGreaterThan(Int(cut["queued_bytes"] ?? "0") ?? 0, 0)
        _ = stalled
        b.terminate()

        // Stalled subscribers past a 1 MiB global cap (each may queue 64 MiB): shed.
        log = s.path("shed.log")
        b = try BrokerProcess(["--log-format", "json", "--client-buffer", "64MiB", "--max-queued-bytes", "1MiB", "--retain-events", "100000"],
                              logFile: log)
        defer { b.terminate() }
        let ch2 = uniqueChannel("shed")
        let held = try (0..<3).map { _ in try b.client.subscribe(ch2, receiveBuffer: 4096) }
        for _ in 0..<60 where try b.metric("starling_shed_global_cap_total") == 0 {
            try b.publishNumbered(ch2, count: 50, prefix: pad)
            usleep(100_000)
        }
        let shed = try XCTUnwrap(waitForLogEvent(log, "shed_global_cap"))
        XCTAssertEqual(shed["channel"], ch2)
        XCTAssertEqual(shed["max_queued_bytes"], "1048576")
        _ = held
    }

    func testDrainIsLogged() throws {
        let s = try Scratch()
        let log = s.path("drain.log")
        let b = try BrokerProcess(["--log-format", "json"], logFile: log)
        let sub = try b.client.subscribe(uniqueChannel())
        XCTAssertEqual(b.terminate(), 0)
        let start = try XCTUnwrap(waitForLogEvent(log, "drain_start"))
        XCTAssertEqual(start["connections"], "1")
        let done = try XCTUnwrap(waitForLogEvent(log, "drain_done"))
        XCTAssertEqual(done["connections_left"], "0")
        XCTAssertEqual(done["timed_out"], "false")
        _ = sub
    }

    func testRedisLossAndReconnectAreLoggedAndCounted() throws {
        let redis = try PrivateRedis()
        let s = try Scratch()
        let log = s.path("redis.log")
        // One loop: one command and one pub/sub connection (each loop keeps its own pair).
        let b = try BrokerProcess(["--log-format", "json", "--redis", redis.url, "--threads", "1"], logFile: log)
        defer { b.terminate() }
        XCTAssertNotNil(waitForLogEvent(log, "redis_connected"))
        // Redis drops the broker's connections (both the command and the pub/sub one).
        try redis.cli("CLIENT", "KILL", "TYPE", "normal")
        try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        let lost = try XCTUnwrap(waitForLogEvent(log, "redis_disconnected"))
        XCTAssertEqual(lost["level"], "warning")
        XCTAssertEqual(lost["redis"], redis.url)
        let back = try XCTUnwrap(waitForLogEvent(log, "redis_reconnected"))
        XCTAssertEqual(back["level"], "notice")
        let deadline = Date().addingTimeInterval(5)
        while try b.sample("starling_redis_reconnects_total") < 2, Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try b.sample("starling_redis_reconnects_total"), 2)
        XCTAssertEqual(try b.sample("starling_store_ready"), 1)
    }

    func testRedisACLUserAndPasswordFile() throws {
        let redis = try PrivateRedis()
        // The least-privilege user docs/deploy.md gives: its keys and channels, no @dangerous command.
        try redis.cli("ACL", "SETUSER", "starling", "on", ">acl-pw-0123456789", "~starling:*", "&starling:*", "+@all", "-@dangerous")
        let s = try Scratch()
        let pwFile = try s.file("redis.pw", "acl-pw-0123456789\n")
        let url = "redis://starling@127.0.0.1:\(redis.port)/0"
        // check: AUTH user password accepted.
        var r = try BrokerProcess.run(["check", "--redis", url, "--redis-password-file", pwFile])
        XCTAssertEqual(r.status, 0, r.stdout)
        XCTAssertTrue(r.stdout.contains("AUTH accepted"), r.stdout)
        XCTAssertFalse(r.stdout.contains("acl-pw"))
        // serve: publishes are stored in that Redis.
        let log = s.path("acl.log")
        let b = try BrokerProcess(["--log-format", "json", "--redis", url], environment: ["STARLING_REDIS_PASSWORD_FILE": pwFile], logFile: log)
        let ch = uniqueChannel()
        try b.client.publish(ch, data: "stored")
        XCTAssertEqual(try redis.cli("XLEN", "starling:{\(ch)}"), "1")
        b.terminate()
        XCTAssertFalse(try String(contentsOfFile: log, encoding: .utf8).contains("acl-pw"))

        // A wrong password: check fails; serve stays unready, logs the refusal, never the password.
        let bad = try s.file("bad.pw", "wrong-password\n")
        r = try BrokerProcess.run(["check", "--redis", url, "--redis-password-file", bad])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("problem: redis: AUTH refused"), r.stdout)
        let badLog = s.path("bad.log")
        let unready = try BrokerProcess(["--log-format", "json", "--redis", url, "--redis-password-file", bad], logFile: badLog)
        defer { unready.terminate() }
        let refused = try XCTUnwrap(waitForLogEvent(badLog, "redis_auth_failed", timeout: 8))
        XCTAssertEqual(refused["level"], "error")
        XCTAssertEqual(try unready.client.request("GET", "/readyz").status, 503)
        XCTAssertEqual(try unready.client.publish(uniqueChannel(), json: "{\"data\":\"x\"}").status, 503)
        XCTAssertFalse(try String(contentsOfFile: badLog, encoding: .utf8).contains("wrong-password"))
    }
}
