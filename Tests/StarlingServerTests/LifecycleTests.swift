// The life of a generation stream (SPEC §4): Stop reaches a streaming worker at once on
// any loop, subscribers end with starling.cancelled; a silent worker's lease runs out and
// the channel ends as starling.abandoned, once; refusals of a streaming publish arrive
// while its body is still open; per-generation channels replay from the start.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

/// Opens a chunked POST whose body stays open; the head is sent.
func openChunkedPost(_ port: Int, path: String, type: String, headers: [(String, String)] = []) throws -> BlockingConnection {
    let c = try BlockingConnection(port: port)
    var head = "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: \(type)\r\n"
    for (n, v) in headers { head += "\(n): \(v)\r\n" }
    try c.send(head + "Transfer-Encoding: chunked\r\n\r\n")
    return c
}

func sendChunk(_ c: BlockingConnection, _ text: String) throws {
    let bytes = Array(text.utf8)
    try c.send(Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10])
}

/// POST /v1/channels/{ch}/cancel.
func cancel(_ b: BrokerProcess, _ ch: String, reason: String? = nil, token: String? = nil) throws -> HTTPResponse {
    var headers: [(String, String)] = [("Content-Type", "application/json")]
    if let token { headers.append(("Authorization", "Bearer \(token)")) }
    let body = reason.map { "{\"reason\":\(JSONWriter.quoted($0))}" } ?? ""
    return try b.client.request("POST", "/v1/channels/\(ch)/cancel", headers: headers, body: Array(body.utf8))
}

func channelState(_ b: BrokerProcess, _ ch: String) throws -> String? {
    try JSONParser.parse(b.client.request("GET", "/v1/channels/\(ch)").body)["state"]?.stringValue
}

/// Stop while a worker streams: sends the cancel on a fresh connection and returns the
/// seconds until the worker's 409 head arrives, with that answer.
func stopAndTime(_ stopper: BrokerProcess, _ ch: String, worker: TokenWorker) throws -> (Double, HTTPResponse) {
    let c = try BlockingConnection(port: stopper.port)
    let t0 = Clock.now()
    try c.send(StarlingHTTPClient.format("POST", "/v1/channels/\(ch)/cancel", headers: [("Content-Type", "application/json")],
                                         body: Array("{\"reason\":\"user pressed Stop\"}".utf8)))
    let answer = try HTTPResponse.read(from: worker.connection, timeout: 3)
    let elapsed = Clock.now() - t0
    let stop = try HTTPResponse.read(from: c)
    XCTAssertEqual(stop.status, 200, stop.text)
    XCTAssertEqual(try JSONParser.parse(stop.body)["state"]?.stringValue, "cancelled")
    return (elapsed, answer)
}

final class LifecycleTests: XCTestCase {
    func testStopReachesTheStreamingWorkerAtOnceAndEndsSubscribers() throws {
        try onEachEngine { broker, run in
            let ch = uniqueChannel("gen")
            let s1 = try broker.client.subscribe(ch)
            let s2 = try broker.client.subscribe(ch)
            let worker = try TokenWorker(port: broker.port, channel: ch, everyMs: 10)
            defer { worker.stop() }
            XCTAssertEqual(try s1.next(5).count, 5, "[\(run)] tokens flow")
            let (elapsed, answer) = try stopAndTime(broker, ch, worker: worker)
            print("[\(run)] Stop → worker's 409: \(String(format: "%.1f", elapsed * 1000)) ms")
            XCTAssertEqual(answer.status, 409, "[\(run)] \(answer.text)")
            XCTAssertEqual(errorCode(answer), "channel_cancelled")
            XCTAssertLessThan(elapsed, 0.050, "[\(run)] Stop reaches the worker within 50 ms")
            XCTAssertTrue(try worker.connection.waitForClose(timeout: 3), "[\(run)] the worker's connection is closed")

            for s in [s1, s2] {
                let rest = try s.readToEnd(timeout: 3)
                XCTAssertEqual(rest.last?.event, "starling.cancelled", "[\(run)]")
                XCTAssertEqual(rest.last?.data, "{\"reason\":\"user pressed Stop\"}")
                XCTAssertEqual(rest.filter { $0.event == "starling.cancelled" }.count, 1)
                XCTAssertTrue(s.connection.peerClosed, "the response ends after starling.cancelled")
            }
            let cancelID = try broker.client.subscribe(ch, lastEventID: "earliest").readToEnd(timeout: 3).last?.id
            XCTAssertEqual(try broker.client.subscribe(ch, lastEventID: cancelID).head.status, 204, "[\(run)] reconnect")
            XCTAssertEqual(try broker.client.subscribe(ch).head.status, 204)
            let late = try broker.client.publish(ch, json: "{\"data\":\"late\"}")
            XCTAssertEqual(late.status, 409)
            XCTAssertEqual(errorCode(late), "channel_cancelled")
            XCTAssertEqual(try channelState(broker, ch), "cancelled")
            let again = try cancel(broker, ch)
            XCTAssertEqual(again.status, 409, "Stop on a stopped channel")
            XCTAssertEqual(errorCode(again), "channel_cancelled")
        }
    }

    func testStopBeforeTheWorkerStartsAndAfterTheFinalEvent() throws {
        try onEachEngine { broker, run in
            let early = uniqueChannel("gen")
            let r = try cancel(broker, early)
            XCTAssertEqual(r.status, 200, "[\(run)] \(r.text)")
            let s = try broker.client.subscribe(early, lastEventID: "earliest")
            XCTAssertEqual(try s.readToEnd(timeout: 3).map(\.data), ["{\"reason\":null}"])
            let post = try openChunkedPost(broker.port, path: "/v1/channels/\(early)/events", type: "application/x-ndjson")
            try sendChunk(post, "{\"data\":\"t1\"}\n")
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(errorCode(answer), "channel_cancelled", "[\(run)] \(answer.text)")

            let done = uniqueChannel("gen")
            try broker.client.publish(done, data: "bye", final: true)
            let late = try cancel(broker, done, reason: "too late")
            XCTAssertEqual(late.status, 409)
            XCTAssertEqual(errorCode(late), "channel_final")
            XCTAssertEqual(try channelState(broker, done), "final")
            XCTAssertEqual(try channelState(broker, uniqueChannel()), "open")
        }
    }

    func testCancelRightsAndBadInput() throws {
        let secret = "test-secret-0123456789abcdef-0123456789"
        let signer = try TokenSigner(hmacSecret: secret)
        try onEachEngine(["--jwt-secret", secret]) { b, run in
            let ch = uniqueChannel("gen")
            XCTAssertEqual(try cancel(b, ch).status, 401, "[\(run)] no token")
            XCTAssertEqual(try cancel(b, ch, token: try signer.token(subscribe: [ch])).status, 403, "subscribe only")
            XCTAssertEqual(try cancel(b, ch, token: try signer.token(cancel: ["other-*"])).status, 403, "another channel")
            XCTAssertEqual(try cancel(b, ch, token: try signer.token(cancel: ["gen-*"])).status, 200, "cancel claim")
            let ch2 = uniqueChannel("gen")
            XCTAssertEqual(try cancel(b, ch2, token: try signer.token(publish: [ch2])).status, 200, "publish claim")
            let admin = try signer.token(cancel: ["*"])
            for (body, why) in [("nope", "not JSON"), ("[1]", "not an object"), ("{\"reason\":5}", "reason not a string"),
                                ("{\"why\":\"x\"}", "unknown field"),
                                ("{\"reason\":\"\(String(repeating: "x", count: 1025))\"}", "reason too long")] {
                let r = try b.client.request("POST", "/v1/channels/\(uniqueChannel())/cancel",
                                             headers: [("Authorization", "Bearer \(admin)")], body: Array(body.utf8))
                XCTAssertEqual(r.status, 400, "[\(run)] \(why): \(r.text)")
            }
            let bad = try b.client.request("POST", "/v1/channels/bad%20name/cancel", headers: [("Authorization", "Bearer \(admin)")])
            XCTAssertEqual(bad.status, 400, "unknown channel names are refused")
            XCTAssertEqual(errorCode(bad), "bad_channel")
            let get = try b.client.request("GET", "/v1/channels/\(ch)/cancel")
            XCTAssertEqual(get.status, 405)
            XCTAssertEqual(get.header("allow"), "POST, OPTIONS")
        }
    }

    func testSilentWorkerHoldsItsLeaseWhileOpenThenEndsAbandonedOnce() throws {
        try onEachEngine { broker, run in
            let ch = uniqueChannel("gen")
            let s = try broker.client.subscribe(ch)
            let post = try openChunkedPost(broker.port, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson",
                                           headers: [("Starling-Lease", "1")])
            try sendChunk(post, "{\"event\":\"token\",\"data\":\"a\"}\n{\"event\":\"token\",\"data\":\"b\"}\n")
            XCTAssertEqual(try s.next(2).map(\.data), ["a", "b"], "[\(run)]")
            // Silent but open for longer than the lease: the open request holds it.
            XCTAssertNil(try s.next(timeout: 1.4), "[\(run)] held while the connection is open")
            XCTAssertEqual(try channelState(broker, ch), "open")
            let closedAt = Clock.now()
            post.shutdownWrite()  // the worker dies
            let end = try s.readToEnd(timeout: 3)
            let waited = Clock.now() - closedAt
            XCTAssertEqual(end.map(\.event), ["starling.abandoned"], "[\(run)] once")
            XCTAssertEqual(end.first?.data, "{\"reason\":\"lease_expired\"}")
            XCTAssertGreaterThan(waited, 0.8, "[\(run)] not before the lease ran out")
            XCTAssertTrue(s.connection.peerClosed)
            XCTAssertEqual(try channelState(broker, ch), "abandoned")
            let late = try broker.client.publish(ch, json: "{\"data\":\"c\"}")
            XCTAssertEqual(errorCode(late), "channel_abandoned", "[\(run)] \(late.text)")
            XCTAssertEqual(try broker.client.subscribe(ch, lastEventID: "earliest").readToEnd(timeout: 2).map(\.event),
                           ["token", "token", "starling.abandoned"], "stored once")
        }
    }

    func testLeaseOnJSONEventsIsRenewedByEachEventAndBadLeasesAreRefused() throws {
        try onEachEngine { broker, run in
            let ch = uniqueChannel("gen")
            let s = try broker.client.subscribe(ch)
            XCTAssertEqual(try broker.client.publish(ch, json: "{\"event\":\"start\",\"data\":1,\"lease\":1}").status, 200)
            for k in 0..<2 {  // each event renews the lease: 1.2 s of events every 0.6 s
                usleep(600_000)
                XCTAssertEqual(try broker.client.publish(ch, json: "{\"data\":\(k)}").status, 200, "[\(run)] renewed")
            }
            let got = try s.readToEnd(timeout: 3)
            XCTAssertEqual(got.map(\.event), ["start", "message", "message", "starling.abandoned"], "[\(run)]")

            for bad in ["0", "-1", "\"5\"", "86401", "0.5", "1e3", "null"] {
                let r = try broker.client.publish(uniqueChannel(), json: "{\"data\":1,\"lease\":\(bad)}")
                XCTAssertEqual(r.status, 400, "[\(run)] lease \(bad): \(r.text)")
            }
            let post = try openChunkedPost(broker.port, path: "/v1/channels/\(uniqueChannel())/events",
                                           type: "application/x-ndjson", headers: [("Starling-Lease", "soon")])
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 400)
            XCTAssertEqual(errorCode(answer), "bad_lease")
        }
    }

    func testStreamingRefusalsAreAnsweredWhileTheBodyIsStillOpen() throws {
        try onEachEngine(["--max-event-bytes", "1000"]) { broker, run in
            let final = uniqueChannel()
            try broker.client.publish(final, data: "done", final: true)
            let cases: [(String, String, Int, String)] = [
                (uniqueChannel(), "{\"data\":1}\n{\"data\": nope}\n", 400, "bad_json"),
                (uniqueChannel(), "{\"data\":1}\n{\"data\":\"\(String(repeating: "x", count: 1500))\"}\n", 413, "event_too_large"),
                (uniqueChannel(), "{\"data\":1}\n{\"data\":\"\(String(repeating: "x", count: 6000))", 413, "event_too_large"),
                (final, "{\"data\":1}\n", 409, "channel_final"),
            ]
            for (ch, chunk, status, code) in cases {
                let post = try openChunkedPost(broker.port, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson")
                try sendChunk(post, chunk)
                // No terminating chunk: the answer must not wait for the body's end.
                let answer = try HTTPResponse.read(from: post, timeout: 2)
                XCTAssertEqual(answer.status, status, "[\(run)] \(answer.text)")
                XCTAssertEqual(errorCode(answer), code)
                XCTAssertEqual(answer.header("connection"), "close")
                XCTAssertTrue(try post.waitForClose(timeout: 3), "[\(run)] closed after the refusal")
            }
        }
    }

    func testSSEBodyFinalEventEndsTheChannel() throws {
        try onEachEngine { broker, run in
            let ch = uniqueChannel("gen")
            let s = try broker.client.subscribe(ch)
            let post = try openChunkedPost(broker.port, path: "/v1/channels/\(ch)/events?final_event=done", type: "text/event-stream")
            try sendChunk(post, "event: delta\ndata: Hel\n\nevent: delta\ndata: lo\n\nevent: done\ndata: [DONE]\n\n")
            try post.send("0\r\n\r\n")
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 200, "[\(run)] \(answer.text)")
            XCTAssertEqual(try s.readToEnd(timeout: 3).map(\.data), ["Hel", "lo", "[DONE]"])
            XCTAssertTrue(s.connection.peerClosed, "[\(run)] the final event ends the stream")
            XCTAssertEqual(try channelState(broker, ch), "final")
            for bad in ["starling.end", "no%20spaces", ""] {
                let p = try openChunkedPost(broker.port, path: "/v1/channels/\(uniqueChannel())/events?final_event=\(bad)",
                                            type: "text/event-stream")
                let r = try HTTPResponse.read(from: p)
                XCTAssertEqual(r.status, 400, "[\(run)] final_event=\(bad)")
                XCTAssertEqual(errorCode(r), "bad_final_event")
            }
        }
    }

    func testSubscribeFromStartReplaysMatchingChannelsOnly() throws {
        try onEachEngine(["--subscribe-from-start", "gen-*", "--subscribe-from-start", "exact"]) { broker, run in
            let gen = uniqueChannel("gen")
            let other = uniqueChannel("chat")
            for ch in [gen, other, "exact"] { try broker.publishNumbered(ch, count: 3) }
            XCTAssertEqual(try broker.client.subscribe(gen).next(3, timeout: 2).map(\.data), ["e-1", "e-2", "e-3"], "[\(run)]")
            XCTAssertEqual(try broker.client.subscribe("exact").next(3, timeout: 2).count, 3)
            let live = try broker.client.subscribe(other)
            XCTAssertNil(try live.next(timeout: 0.3), "[\(run)] other channels stay live-only")
            // An explicit resume point still wins.
            let ids = try broker.publishNumbered(gen, count: 1, from: 4)
            let resumed = try broker.client.subscribe(gen, lastEventID: ids[0])
            try broker.publishNumbered(gen, count: 1, from: 5)
            XCTAssertEqual(try resumed.next(timeout: 2)?.data, "e-5")
        }
        let bad = try? BrokerProcess(["--subscribe-from-start", "a*b"], timeout: 3)
        XCTAssertNil(bad, "a malformed pattern stops the broker at start")
    }
}
