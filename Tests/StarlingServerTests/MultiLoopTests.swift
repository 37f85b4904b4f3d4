// Several event loops in one process (`--threads 4`, more loops than this machine's cores):
// publishers and subscribers land on different loops, and the broker behaves as one.
// Where connections landed is read off `starling_loop_connections{loop=…}`.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class MultiLoopTests: XCTestCase {
    static let loops = 4

    /// Runs `body` on each engine with four loops.
    func onFourLoops(_ arguments: [String] = [], _ body: (BrokerProcess, Engine) throws -> Void) throws {
        for engine in Engine.all {
            let broker = try BrokerProcess(try engine.arguments() + ["--threads", "\(Self.loops)"] + arguments)
            defer { broker.terminate() }
            do { try body(broker, engine) } catch { XCTFail("[\(engine)] \(error)") }
        }
    }

    func testEventsPublishedOnOneLoopReachSubscribersOnEveryLoopOnceInOrder() throws {
        try onFourLoops(["--retain-events", "20000"]) { broker, engine in
            let ch = uniqueChannel("loops")
            let subscribers = try (0..<12).map { _ in try broker.client.subscribe(ch) }
            let perLoop = try broker.connectionsPerLoop()
            XCTAssertEqual(perLoop.count, Self.loops, "[\(engine)] one gauge per loop")
            XCTAssertGreaterThanOrEqual(perLoop.filter { $0 > 0 }.count, 2, "[\(engine)] subscribers landed on several loops: \(perLoop)")
            let total = 10_000
            try broker.publishNumbered(ch, count: total, batch: 20)  // one keep-alive publisher at a time, on one loop
            for (k, s) in subscribers.enumerated() {
                let got = try s.next(total, timeout: 10).map(\.data)
                XCTAssertEqual(got.count, total, "[\(engine)] subscriber \(k) got every event")
                XCTAssertTrue(got == (1...total).map { "e-\($0)" }, "[\(engine)] subscriber \(k): once each, in order")
            }
            XCTAssertEqual(try broker.metric("starling_events_delivered_total"), 12 * total, "[\(engine)] counted over every loop")
        }
    }

    /// The cross-loop hop under load: four publishers pipeline 50 publishes at a time over
    /// eight channels (with four loops most are owned by another loop than the publisher's,
    /// so most appends go there and back in per-turn batches, mixed with answers and stored
    /// batches for the subscribers' loops). Every publish is answered 200, in request order:
    /// a connection's IDs on a channel increase, and the ID each answer names carries that
    /// request's data. Every subscriber, wherever it landed, gets its channel's events once
    /// each, in ID order, live-only and replaying from the start alike.
    func testPipelinedPublishesOnOtherLoopsChannelsAreAnsweredInOrderAndDeliveredOnce() throws {
        try onFourLoops(["--retain-events", "20000"]) { broker, engine in
            let channels = (0..<8).map { _ in uniqueChannel("hop") }
            // Three subscribers a channel: two live-only, one from the start.
            let subscribers = try channels.map { ch in
                try [broker.client.subscribe(ch), broker.client.subscribe(ch), broker.client.subscribe(ch, lastEventID: "earliest")]
            }
            XCTAssertGreaterThanOrEqual(try broker.connectionsPerLoop().filter { $0 > 0 }.count, 3, "[\(engine)] subscribers on several loops")
            let publishers = try (0..<4).map { _ in try BlockingConnection(port: broker.port) }
            let rounds = 8, pipeline = 50
            // What each channel was sent, by the ID its answer named.
            var stored = [[(id: EventID, data: String)]](repeating: [], count: channels.count)
            for round in 0..<rounds {
                var sent = [[(channel: Int, data: String)]](repeating: [], count: publishers.count)
                for (p, c) in publishers.enumerated() {
                    var bytes: [UInt8] = []
                    for k in 0..<pipeline {
                        let n = round * pipeline + k
                        let ch = (n * 5 + p * 3 + n / 8) % channels.count
                        let data = "p\(p)-\(n)"
                        sent[p].append((ch, data))
                        bytes += StarlingHTTPClient.format("POST", "/v1/channels/\(channels[ch])/events",
                                                           headers: [("Content-Type", "text/plain")], body: Array(data.utf8))
                    }
                    try c.send(bytes)  // one write: the broker reads them as one pipelined batch
                }
                for (p, c) in publishers.enumerated() {
                    var lastOnChannel = [EventID?](repeating: nil, count: channels.count)
                    for (ch, data) in sent[p] {
                        let r = try HTTPResponse.read(from: c)
                        XCTAssertEqual(r.status, 200, "[\(engine)] \(data): \(r.text)")
                        let v = try JSONParser.parse(r.body)
                        XCTAssertEqual(v["count"], .number("1"), "[\(engine)] \(data)")
                        let id = EventID(v["first"]!.stringValue!)!
                        if let last = lastOnChannel[ch] { XCTAssertGreaterThan(id, last, "[\(engine)] \(data): answers in request order") }
                        lastOnChannel[ch] = id
                        stored[ch].append((id, data))
                    }
                }
            }
            for (ch, list) in subscribers.enumerated() {
                let want = stored[ch].sorted { $0.id < $1.id }
                XCTAssertEqual(Set(want.map(\.id)).count, want.count, "[\(engine)] one ID per publish")
                for (k, s) in list.enumerated() {
                    let got = try s.next(want.count, timeout: 10)
                    XCTAssertEqual(got.count, want.count, "[\(engine)] channel \(ch), subscriber \(k): every event")
                    XCTAssertTrue(got.map { $0.id ?? "" } == want.map { $0.id.description }, "[\(engine)] channel \(ch), subscriber \(k): once each, in ID order")
                    XCTAssertTrue(got.map(\.data) == want.map(\.data), "[\(engine)] channel \(ch), subscriber \(k): each answer named its own event")
                    XCTAssertNil(try s.next(timeout: 0.2), "[\(engine)] channel \(ch), subscriber \(k): nothing more")
                }
            }
            XCTAssertEqual(try broker.metric("starling_events_published_total"), rounds * pipeline * publishers.count, "[\(engine)]")
        }
    }

    func testChannelInfoAndMetricsCountSubscribersOnEveryLoop() throws {
        try onFourLoops { broker, engine in
            let ch = uniqueChannel("count")
            let subscribers = try (0..<10).map { _ in try broker.client.subscribe(ch) }
            let info = try JSONParser.parse(try broker.client.request("GET", "/v1/channels/\(ch)").body)
            XCTAssertEqual(info["subscribers"], .number("10"), "[\(engine)]")
            XCTAssertEqual(try broker.metric("starling_subscribers"), 10)
            // One scrape: the loops' gauges add up to the process's (its own connection included).
            let text = try broker.client.request("GET", "/metrics").text
            let perLoop = BrokerProcess.connectionsPerLoop(in: text)
            let total = text.split(separator: "\n").first { $0.hasPrefix("starling_connections ") }.flatMap { Int($0.split(separator: " ")[1]) }
            XCTAssertEqual(perLoop.reduce(0, +), total)
            XCTAssertGreaterThanOrEqual(perLoop.reduce(0, +), 11)
            _ = subscribers
        }
    }

    func testFinalEndsStreamsOnEveryLoopAndLaterSubscribesGet204() throws {
        try onFourLoops { broker, engine in
            let ch = uniqueChannel("final")
            let subscribers = try (0..<8).map { _ in try broker.client.subscribe(ch) }
            _ = try broker.client.publish(ch, data: "a")
            let finalID = try broker.client.publish(ch, data: "end", final: true)
            for s in subscribers {
                XCTAssertEqual(try s.readToEnd().map(\.data), ["a", "end"], "[\(engine)] the stream ends after the final event")
                XCTAssertTrue(s.connection.peerClosed)
            }
            for _ in 0..<8 {
                XCTAssertEqual(try broker.client.subscribe(ch, lastEventID: finalID).head.status, 204, "[\(engine)]")
                XCTAssertEqual(try broker.client.subscribe(ch).head.status, 204, "[\(engine)] live-only on a completed channel")
            }
        }
    }

    func testResumeOnEveryLoopWhilePublishingMissesAndRepeatsNothing() throws {
        try onFourLoops(["--retain-events", "100000"]) { broker, engine in
            let ch = uniqueChannel("resume")
            try broker.publishNumbered(ch, count: 1000, batch: 100)
            let more = 2000
            let publisher = Thread { _ = try? broker.publishNumbered(ch, count: more, from: 1001, batch: 5) }
            publisher.start()
            // Eight subscribers resume from different points while the publisher runs.
            var streams: [(from: Int, stream: SSEStream)] = []
            for k in 0..<8 {
                let from = k * 100
                let id = from == 0 ? "earliest" : try broker.idOfNumbered(ch, from)
                streams.append((from, try broker.client.subscribe(ch, lastEventID: id)))
            }
            for (from, s) in streams {
                let want = 1000 + more - from
                let got = try s.next(want, timeout: 10).map(\.data)
                XCTAssertTrue(got == ((from + 1)...(1000 + more)).map { "e-\($0)" },
                              "[\(engine)] resumed after \(from): got \(got.count) of \(want), in order, once each")
            }
        }
    }

    func testDrainAnswersStreamingPublishesOnEveryLoop() throws {
        for engine in Engine.all {
            let b = try BrokerProcess(try engine.arguments() + ["--threads", "\(Self.loops)"])
            let ch = uniqueChannel("drain")
            let s = try b.client.subscribe(ch)
            var posts: [BlockingConnection] = []
            for _ in 0..<8 {
                let post = try BlockingConnection(port: b.port)
                try post.send("POST /v1/channels/\(ch)/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
                try post.sendChunk("{\"data\":\"first\"}\n")
                posts.append(post)
            }
            XCTAssertEqual(try s.next(8).count, 8)
            XCTAssertGreaterThanOrEqual(try b.connectionsPerLoop().filter { $0 > 0 }.count, 2, "[\(engine)] work on several loops")
            kill(b.process.processIdentifier, SIGTERM)
            Thread.sleep(forTimeInterval: 0.3)
            for post in posts {
                try post.sendChunk("{\"data\":\"second\"}\n")
                try post.send("0\r\n\r\n")
                let answer = try HTTPResponse.read(from: post)
                XCTAssertEqual(answer.status, 200, "[\(engine)] \(answer.text)")
                XCTAssertEqual(try JSONParser.parse(answer.body)["count"], .number("2"), "[\(engine)] both lines stored and answered")
            }
            b.process.waitUntilExit()
            XCTAssertEqual(b.process.terminationStatus, 0, "[\(engine)] every loop drained, then exit 0")
        }
    }
}

extension BrokerProcess {
    /// `starling_loop_connections{loop="k"}` for each loop, in loop order.
    func connectionsPerLoop() throws -> [Int] {
        Self.connectionsPerLoop(in: try client.request("GET", "/metrics").text)
    }

    static func connectionsPerLoop(in metrics: String) -> [Int] {
        metrics.split(separator: "\n").filter { $0.hasPrefix("starling_loop_connections{") }
            .compactMap { Int($0.split(separator: " ").last ?? "") }
    }

    /// The ID of the event with data "e-N" on `channel` (read from its history).
    func idOfNumbered(_ channel: String, _ n: Int) throws -> String {
        let first = try client.subscribe(channel, lastEventID: "earliest").next(n)
        guard first.count == n, first.last?.data == "e-\(n)", let id = first.last?.id else {
            throw ClientError("no event e-\(n) on \(channel)")
        }
        return id
    }
}

extension BlockingConnection {
    /// One chunk of a chunked request body.
    func sendChunk(_ text: String) throws {
        try send(Array(String(text.utf8.count, radix: 16).utf8) + [13, 10] + Array(text.utf8) + [13, 10])
    }
}
