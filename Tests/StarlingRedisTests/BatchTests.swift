// One Redis: the publishes of a loop turn leave as one `batch` call of the script
// (RedisStore.flushBatch). Each keeps its own answer (a refusal among them is that
// publish's alone), they keep their order, and a Stop sent after them does not overtake.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class BatchTests: XCTestCase {
    private func request(_ method: String, _ path: String, _ body: String) -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// EVALSHA calls the shared Redis has run (INFO commandstats).
    private func scriptCalls() throws -> Int {
        let stats = try sharedRedisCLI("INFO", "commandstats")
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_evalsha:calls=") }) else { return 0 }
        return Int(line.dropFirst("cmdstat_evalsha:calls=".count).prefix(while: \.isNumber)) ?? -1
    }

    /// 40 pipelined publishes over 4 channels, one of them final: arriving in one read they
    /// share script calls, yet every publish gets its own answer, in order.
    func testPipelinedPublishesShareACallAndKeepTheirOwnAnswers() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL()])
        defer { broker.terminate() }
        let channels = (0..<4).map { _ in uniqueChannel("batch") }
        XCTAssertEqual(try broker.client.publish(channels[2], json: "{\"data\":\"end\",\"final\":true}").status, 200)
        let subscribers = try [0, 1, 3].map { try broker.client.subscribe(channels[$0]) }
        let before = try scriptCalls()
        var text = ""
        for k in 0..<40 { text += request("POST", "/v1/channels/\(channels[k % 4])/events", "{\"data\":\"e-\(k)\"}") }
        let c = try BlockingConnection(port: broker.port)
        try c.send(text)
        var ids: [Int: [EventID]] = [:]
        for k in 0..<40 {
            let r = try HTTPResponse.read(from: c, timeout: 10)
            if k % 4 == 2 {
                XCTAssertEqual(r.status, 409, "publish \(k) to the final channel")
                continue
            }
            XCTAssertEqual(r.status, 200, "publish \(k): \(r.text)")
            let id = try XCTUnwrap(EventID(try XCTUnwrap(try JSONParser.parse(Array(r.text.utf8))["first"]?.stringValue)))
            ids[k % 4, default: []].append(id)
        }
        for (n, channel) in [0, 1, 3].enumerated() {
            let got = ids[channel] ?? []
            XCTAssertEqual(got.count, 10)
            XCTAssertEqual(got, got.sorted(), "IDs of channel \(channel) rise in publish order")
            let events = try (0..<10).map { _ in try XCTUnwrap(subscribers[n].next()) }
            XCTAssertEqual(events.map(\.data), stride(from: channel, to: 40, by: 4).map { "e-\($0)" })
            XCTAssertEqual(events.map(\.id), got.map { "\($0)" })
        }
        // Fewer script calls than publishes: they were batched.
        let calls = try scriptCalls() - before
        XCTAssertLessThan(calls, 40, "40 publishes in \(calls) commands")
    }

    /// Large publishes pipelined among small ones: a batch also leaves once it holds 256 KB of
    /// arguments; every publish is still stored whole and answered in order.
    func testLargePublishesAmongSmallOnesAreStoredWhole() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL()])
        defer { broker.terminate() }
        let ch = uniqueChannel("batch-large")
        let big = String(repeating: "x", count: 200_000)
        var text = ""
        var sent: [String] = []
        for k in 0..<8 {
            let data = k % 2 == 0 ? "\(k)-" + big : "small-\(k)"
            sent.append(data)
            text += request("POST", "/v1/channels/\(ch)/events", "{\"data\":\"\(data)\"}")
        }
        let c = try BlockingConnection(port: broker.port)
        try c.send(text)
        for k in 0..<8 { XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200, "publish \(k)") }
        let s = try broker.client.subscribe(ch, lastEventID: "earliest")
        let got = try (0..<8).map { _ in try XCTUnwrap(s.next()).data }
        XCTAssertEqual(got, sent)
    }

    /// A publish and a Stop of its channel, pipelined: the publish is stored and answered
    /// 200, then the Stop ends the channel after it.
    func testStopPipelinedAfterAPublishDoesNotOvertakeIt() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL()])
        defer { broker.terminate() }
        let ch = uniqueChannel("batch-stop")
        let c = try BlockingConnection(port: broker.port)
        try c.send(request("POST", "/v1/channels/\(ch)/events", "{\"data\":\"last\"}")
                   + request("POST", "/v1/channels/\(ch)/cancel", "{\"reason\":\"user\"}"))
        XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200)
        XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200)
        let s = try broker.client.subscribe(ch, lastEventID: "0")
        let events = try s.readToEnd(timeout: 5)
        XCTAssertEqual(events.map(\.event), ["message", "starling.cancelled"])
        XCTAssertEqual(events.first?.data, "last")
    }
}
