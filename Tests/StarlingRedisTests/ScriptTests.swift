// The shipped publish script: the binary's copy is the file's, a worker calling it with
// redis-cli reaches SSE subscribers like an HTTP publish, and retention is applied.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class ScriptTests: XCTestCase {
    func testEmbeddedScriptMatchesShippedFile() throws {
        let lua = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let swift = try String(contentsOf: repositoryRoot.appendingPathComponent("Sources/StarlingStore/RedisPublishScript.swift"), encoding: .utf8)
        guard let open = swift.range(of: "##\"\"\"\n"), let close = swift.range(of: "\n    \"\"\"##") else {
            return XCTFail("RedisPublishScript.swift has no ##\"\"\" literal")
        }
        let embedded = swift[open.upperBound..<close.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }.joined(separator: "\n")
        XCTAssertEqual(embedded + "\n", lua, "run ops/redis/embed-script.sh after editing ops/redis/publish.lua")
    }

    func testDirectScriptCallFromRedisCliReachesSubscriber() throws {
        let url = try BrokerProcess.redisURL()
        let broker = try BrokerProcess(["--redis", url])
        defer { broker.terminate() }
        let ch = uniqueChannel("script")
        let s = try broker.client.subscribe(ch)
        XCTAssertEqual(s.head.status, 200)
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        XCTAssertEqual(sha.count, 40, sha)
        let key = "starling:{\(ch)}"
        let ids = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600",
                                     "token", "Hello", "text", "", "0", "", "",
                                     "progress", "{\"pct\":40}", "json", "task-1", "0", "", "")
        XCTAssertEqual(ids.split(separator: "\n").count, 2, ids)
        let first = try XCTUnwrap(s.next())
        XCTAssertEqual(first.event, "token")
        XCTAssertEqual(first.data, "Hello")
        XCTAssertEqual(first.id, String(ids.split(separator: "\n")[0]))
        let second = try XCTUnwrap(s.next())
        XCTAssertEqual(second.event, "progress")
        XCTAssertEqual(second.data, "{\"pct\":40}")

        // An HTTP publish lands in the same stream, after the worker's events.
        try broker.publish(ch, 1...1)
        XCTAssertEqual(try s.next()?.data, "e-1")

        // A repeated producer seq is acknowledged but not stored again.
        let once = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "token", "a", "text", "", "0", "worker-7", "1")
        let again = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "token", "a", "text", "", "0", "worker-7", "1")
        XCTAssertFalse(once.isEmpty)
        XCTAssertEqual(again, "", "a duplicate seq returns an empty ID")
        XCTAssertEqual(try s.next()?.data, "a")

        // The worker completes the channel: the stream ends, HTTP publishes get 409.
        _ = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "done", "bye", "text", "", "1", "", "")
        let rest = try s.readToEnd(timeout: 5)
        XCTAssertEqual(rest.map(\.data), ["bye"])
        XCTAssertEqual(try broker.client.publish(ch, json: "{\"data\":\"late\"}").status, 409)
        let refused = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "token", "late", "text", "", "0", "", "")
        XCTAssertTrue(refused.contains("FINAL"), refused)
    }

    /// Streams written before the state record existed (or by another writer) keep their
    /// end, their lease and their chain: the script reads the newest entry when it has no
    /// record or another writer appended after it, and moves the old lease hash in.
    func testChannelWrittenWithoutTheStateRecordKeepsEndLeaseAndChain() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        func publish(_ key: String, _ data: String) throws -> String {
            try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "token", data, "text", "", "0", "", "")
        }
        // Ended as an older script left it: a final entry, no record.
        let ended = "starling:{\(uniqueChannel("old"))}"
        _ = try sharedRedisCLI("XADD", ended, "*", "e", "done", "d", "x", "k", "text", "f", "1")
        XCTAssertTrue(try publish(ended, "late").hasPrefix("FINAL starling:"))
        // Leased as an older script left it: the lease hash moves into the record.
        let leased = "starling:{\(uniqueChannel("old"))}"
        _ = try sharedRedisCLI("XADD", leased, "*", "e", "token", "d", "a", "k", "text", "l", "1")
        _ = try sharedRedisCLI("HSET", leased + ":lease", "ms", "60000", "due", "99999999999999")
        let id = try publish(leased, "b")
        XCTAssertNotNil(EventID(id), id)
        XCTAssertEqual(try sharedRedisCLI("EXISTS", leased + ":lease"), "0")
        XCTAssertEqual(try sharedRedisCLI("HGET", leased + ":state", "ms"), "60000")
        XCTAssertEqual(try sharedRedisCLI("HGET", leased + ":state", "id"), id)
        XCTAssertTrue(try sharedRedisCLI("XRANGE", leased, id, id).contains("\nl\n1"), "stored as leased")
        // Another writer appends a final entry after the record: the script sees it.
        _ = try sharedRedisCLI("XADD", leased, "*", "e", "done", "d", "x", "k", "text", "f", "1")
        XCTAssertTrue(try publish(leased, "c").hasPrefix("FINAL starling:"))
        // The stream deleted under a record: the channel starts over.
        let gone = "starling:{\(uniqueChannel("old"))}"
        _ = try publish(gone, "a")
        _ = try sharedRedisCLI("EVALSHA", sha, "1", gone, "1000", "3600", "done", "z", "text", "", "1", "", "")
        _ = try sharedRedisCLI("DEL", gone)
        let again = try publish(gone, "b")
        XCTAssertNotNil(EventID(again), again)
        XCTAssertEqual(try sharedRedisCLI("XLEN", gone), "1")
    }

    /// Every key the script writes expires: a leased channel whose first batch is final
    /// (its record held only the lease when the end came) keeps its record's expiry, and a
    /// busy channel's key expires retain-seconds after its last publish, its record no later.
    func testEveryKeyTheScriptWritesExpires() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        let key = "starling:{\(uniqueChannel("expiry"))}"
        let id = try sharedRedisCLI("EVALSHA", sha, "1", key, "lease", "60000", "1000", "60", "done", "x", "text", "", "1", "", "")
        XCTAssertNotNil(EventID(id), id)
        XCTAssertEqual(try sharedRedisCLI("HGET", key + ":state", "e"), "final")
        XCTAssertEqual(try sharedRedisCLI("HEXISTS", key + ":state", "ms"), "0", "the lease goes with the end")
        for k in [key, key + ":state"] {
            let ttl = Int(try sharedRedisCLI("PTTL", k)) ?? -1
            XCTAssertGreaterThan(ttl, 58_000, "\(k) expires")
            XCTAssertLessThanOrEqual(ttl, 61_000, k)
        }
        // Many publishes over two seconds: the key's expiry follows the last one.
        let busy = "starling:{\(uniqueChannel("expiry"))}"
        var last = ""
        let start = Date()
        while Date().timeIntervalSince(start) < 2.2 {
            last = try sharedRedisCLI("EVALSHA", sha, "1", busy, "1000", "2", "token", "a", "text", "", "0", "", "")
        }
        let ms = Int(last.split(separator: "-")[0]) ?? 0
        let expireAt = Int(try sharedRedisCLI("PEXPIRETIME", busy)) ?? -1
        XCTAssertEqual(Double(expireAt), Double(ms + 2_000), accuracy: 100, "retain-seconds after the last publish")
        let stateAt = Int(try sharedRedisCLI("PEXPIRETIME", busy + ":state")) ?? -1
        XCTAssertGreaterThan(stateAt, 0, "the record expires")
        XCTAssertLessThanOrEqual(stateAt, expireAt, "the record never outlives the stream")
    }

    /// `checked` (the broker's calls) shifts every form by one argument and stores exactly
    /// what the unchecked call stores; without it the script still checks (the test below).
    func testCheckedFormsStoreWhatTheUncheckedOnesStore() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        let plain = "starling:{\(uniqueChannel("checked"))}", checked = "starling:{\(uniqueChannel("checked"))}"
        let events = ["token", "Hello", "text", "", "0", "", "", "progress", "{\"pct\":40}", "json", "k", "0", "w", "7"]
        let a = try sharedRedisCLI(["EVALSHA", sha, "1", plain, "1000", "3600"] + events)
        let b = try sharedRedisCLI(["EVALSHA", sha, "1", checked, "checked", "1000", "3600"] + events)
        XCTAssertEqual(a.split(separator: "\n").count, 2, a)
        XCTAssertEqual(b.split(separator: "\n").count, 2, b)
        // The entries' fields (IDs aside) and the producer record are the same.
        func fields(_ key: String) throws -> [String] {
            try sharedRedisCLI("XRANGE", key, "-", "+").split(separator: "\n").map(String.init).filter { EventID($0) == nil }
        }
        XCTAssertEqual(try fields(checked), try fields(plain))
        XCTAssertEqual(try sharedRedisCLI("HGET", checked + ":producers", "w"), "0:7")
        XCTAssertEqual(try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "1000", "3600",
                                          "token", "again", "text", "", "0", "w", "7"), "", "a repeat is still a repeat")
        // lease, hold and cancel after `checked`.
        let leased = try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "lease", "60000", "1000", "3600",
                                        "token", "x", "text", "", "0", "", "")
        XCTAssertNotNil(EventID(leased), leased)
        XCTAssertEqual(try sharedRedisCLI("HGET", checked + ":state", "ms"), "60000")
        XCTAssertEqual(try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "hold", "1000", "3600"), "open")
        let cancelled = try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "cancel", "1000", "3600", "{\"reason\":null}")
        XCTAssertNotNil(EventID(cancelled), cancelled)
        XCTAssertEqual(try sharedRedisCLI("HGET", checked + ":state", "e"), "cancelled")
        let late = try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "1000", "3600", "token", "late", "text", "", "0", "", "")
        XCTAssertTrue(late.contains("CANCELLED"), late)
        // A bad retention argument is refused with `checked` too: only the event checks are skipped.
        let bad = try sharedRedisCLI("EVALSHA", sha, "1", checked, "checked", "0", "3600", "token", "a", "text", "", "0", "", "")
        XCTAssertTrue(bad.contains("ERR starling"), bad)
    }

    /// `batch`: n calls in one, each with its own reply; a refusal is that call's alone, and a
    /// batch whose counts do not match its keys is refused whole.
    func testBatchRunsEachCallWithItsOwnReply() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        let open = "starling:{\(uniqueChannel("batch"))}", ended = "starling:{\(uniqueChannel("batch"))}"
        _ = try sharedRedisCLI("EVALSHA", sha, "1", ended, "1000", "3600", "done", "x", "text", "", "1", "", "")
        let reply = try sharedRedisCLI("EVALSHA", sha, "3", open, ended, open, "batch", "checked", "1000", "3600",
                                       "7", "token", "a", "text", "", "0", "", "",
                                       "7", "token", "b", "text", "", "0", "", "",
                                       "9", "lease", "5000", "token", "c", "text", "", "0", "", "")
        let lines = reply.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, reply)
        XCTAssertNotNil(EventID(lines[0]), reply)
        XCTAssertTrue(lines[1].contains("FINAL"), reply)
        XCTAssertNotNil(EventID(lines[2]), reply)
        XCTAssertEqual(try sharedRedisCLI("XLEN", open), "2")
        XCTAssertEqual(try sharedRedisCLI("XLEN", ended), "1", "nothing of the refused call is stored")
        XCTAssertEqual(try sharedRedisCLI("HGET", open + ":state", "ms"), "5000")
        // A one-event call's reply is its ID alone; a call of two events, an array of two.
        let shapes = try sharedRedisCLI("--json", "EVALSHA", sha, "2", open, open, "batch", "checked", "1000", "3600",
                                        "3", "token", "e", "text", "14", "token", "f", "text", "", "0", "", "", "token", "g", "text", "", "0", "", "")
        let decoded = try JSONSerialization.jsonObject(with: Data(shapes.utf8)) as? [Any]
        XCTAssertNotNil(decoded?.first as? String, shapes)
        XCTAssertEqual((decoded?.last as? [String])?.count, 2, shapes)
        let misshapen = try sharedRedisCLI("EVALSHA", sha, "2", open, ended, "batch", "1000", "3600", "7", "token", "d", "text", "", "0", "", "")
        XCTAssertTrue(misshapen.contains("ERR starling: batch"), misshapen)
        XCTAssertEqual(try sharedRedisCLI("XLEN", open), "5", "a misshapen batch stores nothing")
    }

    /// One plain event may come as 3 arguments (name data kind), alone, leased or in a batch:
    /// it stores and announces what its 7-argument form does, and is still checked unless
    /// the call says `checked`.
    func testThreeArgumentPlainEventStoresWhatTheSevenArgumentOneStores() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        let seven = "starling:{\(uniqueChannel("plain"))}", three = "starling:{\(uniqueChannel("plain"))}"
        XCTAssertNotNil(EventID(try sharedRedisCLI("EVALSHA", sha, "1", seven, "1000", "3600", "token", "{\"t\":1}", "json", "", "0", "", "")))
        XCTAssertNotNil(EventID(try sharedRedisCLI("EVALSHA", sha, "1", three, "1000", "3600", "token", "{\"t\":1}", "json")))
        let reply = try sharedRedisCLI("EVALSHA", sha, "2", three, three, "batch", "checked", "1000", "3600",
                                       "3", "token", "b", "text", "5", "lease", "5000", "token", "c", "text")
        XCTAssertEqual(reply.split(separator: "\n").compactMap { EventID(String($0)) }.count, 2, reply)
        XCTAssertNotNil(EventID(try sharedRedisCLI("EVALSHA", sha, "1", seven, "1000", "3600", "token", "b", "text", "", "0", "", "")))
        XCTAssertNotNil(EventID(try sharedRedisCLI("EVALSHA", sha, "1", seven, "lease", "5000", "1000", "3600", "token", "c", "text", "", "0", "", "")))
        func fields(_ key: String) throws -> [String] {
            try sharedRedisCLI("XRANGE", key, "-", "+").split(separator: "\n").map(String.init).filter { EventID($0) == nil }
        }
        XCTAssertEqual(try fields(three), try fields(seven))
        XCTAssertEqual(try fields(three).filter { $0 == "token" }.count, 3, "three entries")
        let newest = try sharedRedisCLI("XREVRANGE", three, "+", "-", "COUNT", "1").split(separator: "\n")
        XCTAssertEqual(newest.suffix(2), ["l", "1"], "the leased entry says so")
        XCTAssertEqual(try sharedRedisCLI("HGET", three + ":state", "ms"), "5000")
        let badJSON = try sharedRedisCLI("EVALSHA", sha, "1", three, "1000", "3600", "token", "{nope", "json")
        XCTAssertTrue(badJSON.contains("event [0]: data is not JSON"), badJSON)
        XCTAssertEqual(try sharedRedisCLI("XLEN", three), "3", "the refused event is not stored")
    }

    func testBadScriptArgumentsAreRefusedAndStoreNothing() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let ch = uniqueChannel("script")
        let key = "starling:{\(ch)}"
        let wrongCount = try sharedRedisCLI("EVAL", script, "1", key, "1000", "3600", "token", "a", "text", "")
        XCTAssertTrue(wrongCount.contains("ERR starling"), wrongCount)
        let badJSON = try sharedRedisCLI("EVAL", script, "1", key, "1000", "3600",
                                         "token", "a", "text", "", "0", "", "", "token", "{nope", "json", "", "0", "", "")
        XCTAssertTrue(badJSON.contains("event [1]"), badJSON)
        XCTAssertEqual(try sharedRedisCLI("EXISTS", key), "0", "nothing of a refused batch is stored")
    }

    func testRetentionBoundsStreamLengthAndSetsTTL() throws {
        let url = try BrokerProcess.redisURL()
        let broker = try BrokerProcess(["--redis", url, "--retain-events", "50", "--retain-seconds", "120"])
        defer { broker.terminate() }
        let ch = uniqueChannel("retain")
        try broker.publish(ch, 1...1000, batch: 20)
        let key = "starling:{\(ch)}"
        let length = Int(try sharedRedisCLI("XLEN", key)) ?? -1
        // MAXLEN ~ trims whole radix-tree nodes (stream-node-max-entries, 100 by default).
        XCTAssertGreaterThanOrEqual(length, 50)
        XCTAssertLessThanOrEqual(length, 50 + 100)
        let ttl = Int(try sharedRedisCLI("PTTL", key)) ?? -1
        XCTAssertGreaterThan(ttl, 100_000)
        XCTAssertLessThanOrEqual(ttl, 120_000)
        let info = try JSONParser.parse(try broker.client.request("GET", "/v1/channels/\(ch)").body)
        XCTAssertEqual(info["length"], .number(String(length)))
    }
}
