// The memory engine forgets (SPEC §6): a channel with no subscribers whose events have
// all expired is removed and its memory returned; a finished channel's name is free
// again; `starling_channels` counts what is held. Memory engine only: Redis expires keys.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class ForgetTests: XCTestCase {
    /// Polls `metric` until it equals `value`; false at the deadline.
    func wait(_ broker: BrokerProcess, _ metric: String, equals value: Int, timeout: Double) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try broker.metric(metric) == value { return true }
            usleep(100_000)
        }
        return false
    }

    func testFinishedChannelNameIsFreeAgainOnceItsEventsExpire() throws {
        let broker = try BrokerProcess(["--retain-seconds", "1"])
        defer { broker.terminate() }
        let ch = uniqueChannel("done")
        XCTAssertEqual(try broker.client.publish(ch, json: "{\"data\":\"bye\",\"final\":true}").status, 200)
        XCTAssertEqual(try broker.client.publish(ch, json: "{\"data\":\"late\"}").status, 409)
        XCTAssertEqual(try broker.metric("starling_channels"), 1)
        XCTAssertTrue(try wait(broker, "starling_channels", equals: 0, timeout: 5), "the sweep forgets it")
        let again = try broker.client.publish(ch, json: "{\"data\":\"new task\"}")
        XCTAssertEqual(again.status, 200, "the name is free again: \(again.text)")
        let info = try JSONParser.parse(try broker.client.request("GET", "/v1/channels/\(ch)").body)
        XCTAssertEqual(info["final"], .bool(false))
        XCTAssertEqual(info["length"], .number("1"))
    }

    func testExpiredChannelIsForgottenOnAccessBeforeTheSweep() throws {
        let broker = try BrokerProcess(["--retain-seconds", "1"])
        defer { broker.terminate() }
        let ch = uniqueChannel("done")
        XCTAssertEqual(try broker.client.publish(ch, json: "{\"producer\":\"w\",\"seq\":5,\"data\":1,\"final\":true}").status, 200)
        usleep(1_050_000)
        // Whether or not the sweep has run, the name and the producer's sequence start over.
        let r = try broker.client.publish(ch, json: "{\"producer\":\"w\",\"seq\":1,\"data\":2}")
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(integer(try JSONParser.parse(r.body)["count"]), 1, r.text)
    }

    func testWatchedChannelIsKeptUntilItsLastSubscriberLeaves() throws {
        let broker = try BrokerProcess(["--retain-seconds", "1"])
        defer { broker.terminate() }
        let ch = uniqueChannel("watched")
        let id = try broker.client.publish(ch, data: "one")
        var streams = [try broker.client.subscribe(ch, lastEventID: id)]
        XCTAssertEqual(streams[0].head.status, 200)
        usleep(2_500_000)  // past retention, several sweeps
        XCTAssertEqual(try broker.metric("starling_channels"), 1, "a watched channel is kept")
        // Its position is kept too: a second subscriber resuming at the last ID sees no gap.
        streams.append(try broker.client.subscribe(ch, lastEventID: id))
        try broker.client.publish(ch, data: "two")
        for s in streams { XCTAssertEqual(try s.next()?.data, "two") }
        streams.removeAll()  // both connections close
        XCTAssertTrue(try wait(broker, "starling_channels", equals: 0, timeout: 6), "forgotten once nobody watches")
    }

    /// VmRSS of a process, in kB.
    func rss(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) else {
            throw ClientError("no VmRSS in /proc/\(pid)/status")
        }
        return kb
    }

    /// Publishes one final event to each of `names`: POST /v1/events, `perRequest`
    /// channels each, `depth` requests in flight on each of `connections` connections.
    func publishFinals(_ broker: BrokerProcess, _ names: [String], perRequest: Int = 1000, depth: Int = 8,
                       connections: Int = 2) throws {
        final class Failures: @unchecked Sendable {  // guarded by lock
            let lock = NSLock()
            var list: [String] = []
        }
        let failures = Failures()
        let share = (names.count + connections - 1) / connections
        let port = broker.port
        DispatchQueue.concurrentPerform(iterations: connections) { k in
            do {
                let mine = Array(names[min(names.count, k * share)..<min(names.count, (k + 1) * share)])
                try Self.publishFinals(port: port, mine, perRequest: perRequest, depth: depth)
            } catch {
                failures.lock.lock(); failures.list.append("\(error)"); failures.lock.unlock()
            }
        }
        if let first = failures.list.first { throw ClientError(first) }
    }

    static func publishFinals(port: Int, _ names: [String], perRequest: Int, depth: Int) throws {
        let c = try BlockingConnection(port: port)
        var requests: [[UInt8]] = []
        for start in stride(from: 0, to: names.count, by: perRequest) {
            let body = "[" + names[start..<min(start + perRequest, names.count)]
                .map { "{\"channel\":\"\($0)\",\"data\":\"done\",\"final\":true}" }.joined(separator: ",") + "]"
            requests.append(StarlingHTTPClient.format("POST", "/v1/events", headers: [("Content-Type", "application/json")],
                                                      body: Array(body.utf8)))
        }
        var sent = 0, answered = 0
        while answered < requests.count {
            while sent < requests.count, sent - answered < depth { try c.send(requests[sent]); sent += 1 }
            let r = try HTTPResponse.read(from: c, timeout: 30)
            guard r.status == 200 else { throw ClientError("publish answered \(r.status): \(r.text.prefix(300))") }
            answered += 1
        }
    }

    /// Waits until the gauge is 0 and VmRSS has settled (the quiet tick after a wave
    /// hands the pages back); the settled VmRSS.
    func settledRSS(_ broker: BrokerProcess, below limit: Int = .max) throws -> Int {
        XCTAssertTrue(try wait(broker, "starling_channels", equals: 0, timeout: 20), "every channel forgotten")
        let pid = broker.process.processIdentifier
        var now = try rss(pid)
        let deadline = Date().addingTimeInterval(limit == .max ? 1.5 : 5)
        while Date() < deadline {
            usleep(200_000)
            now = try rss(pid)
            if now <= limit { break }
        }
        return now
    }

    func testThreeHundredThousandExpiredChannelsGiveTheirMemoryBack() throws {
        let broker = try BrokerProcess(["--retain-seconds", "2"])
        defer { broker.terminate() }
        let pid = broker.process.processIdentifier
        // Warm up: the same code paths once, so "before" counts the program, not channels.
        try publishFinals(broker, (0..<5_000).map { "warm-\($0)" })
        let before = try settledRSS(broker)
        let names = (0..<300_000).map { "task-\($0)" }
        let started = Date()
        try publishFinals(broker, names)
        let published = -started.timeIntervalSinceNow
        let peak = try rss(pid)
        let held = try broker.metric("starling_channels")
        XCTAssertGreaterThan(held, 0)
        let after = try settledRSS(broker, below: before + before / 10)
        print("memory engine, 300,000 one-event channels, --retain-seconds 2: VmRSS before \(before) kB, "
              + "after publishing \(peak) kB (\(held) channels held), after expiry \(after) kB; "
              + "published in \(String(format: "%.1f", published)) s")
        XCTAssertLessThanOrEqual(Double(after), Double(before) * 1.10, "RSS back within 10 % (\(before) → \(peak) → \(after) kB)")
        // Finished channels' names publish again.
        let sample = stride(from: 0, to: names.count, by: 100).map { names[$0] }
        try publishFinals(broker, sample)
        XCTAssertEqual(try broker.metric("starling_channels"), sample.count)
    }
}
