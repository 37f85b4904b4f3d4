// Streaming ingest (SPEC §4): a chunked NDJSON or SSE request body is published line by
// line while it is still open; bad lines answer an error naming them; producers that
// retry never double an event.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class IngestTests: XCTestCase {
    /// Opens a chunked POST and returns the connection, the head already sent.
    func openChunkedPost(_ broker: BrokerProcess, path: String, type: String) throws -> BlockingConnection {
        let c = try BlockingConnection(port: broker.port)
        try c.send("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: \(type)\r\nTransfer-Encoding: chunked\r\n\r\n")
        return c
    }

    func sendChunk(_ c: BlockingConnection, _ bytes: [UInt8]) throws {
        try c.send(Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10])
    }

    func endChunks(_ c: BlockingConnection) throws { try c.send("0\r\n\r\n") }

    func testStreamingToAFinalChannelIsAlwaysAnswered() throws {
        // Several batches in flight, each refused by the store: the first refusal waits for
        // the others, and the answer must still go out (it once hung 1 run in 20).
        try onEachEngine { broker, run in
            for k in 0..<8 {
                let ch = uniqueChannel("ended")
                _ = try broker.client.publish(ch, data: "end", final: true)
                let post = try ChunkedPublish(port: broker.port, path: "/v1/channels/\(ch)/events")
                for j in 0..<4 { try? post.chunk("{\"data\":\"a\(j)\"}\n{\"data\":\"b\(j)\"}\n") }
                try? post.end()
                let answer = try HTTPResponse.read(from: post.connection, timeout: 3)
                XCTAssertEqual(answer.status, 409, "[\(run)] round \(k): \(answer.text)")
                XCTAssertEqual(errorCode(answer), "channel_final")
            }
        }
    }

    func testSubscriberSeesLineOneBeforeLineTwoIsSent() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            let post = try openChunkedPost(broker, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson")
            try sendChunk(post, Array("{\"event\":\"token\",\"data\":\"Hel\"}\n".utf8))
            XCTAssertEqual(try s.next(timeout: 3)?.data, "Hel", "[\(engine)] line 1 is live while the body is open")
            try sendChunk(post, Array("{\"event\":\"token\",\"data\":\"lo\"}\n{\"data\":\"!\",".utf8))
            XCTAssertEqual(try s.next(timeout: 3)?.data, "lo")
            try sendChunk(post, Array("\"final\":true}\n".utf8))
            try endChunks(post)
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 200, answer.text)
            XCTAssertEqual(try JSONParser.parse(answer.body)["count"], .number("3"))
            XCTAssertEqual(try s.readToEnd(timeout: 3).map(\.data), ["!"])
        }
    }

    func testBadNDJSONLineIsNamedAndEarlierLinesStayPublished() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            let post = try openChunkedPost(broker, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson")
            try sendChunk(post, Array("{\"data\":1}\n{\"data\":2}\n{\"data\": nope}\n{\"data\":4}\n".utf8))
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 400)
            XCTAssertTrue(answer.text.contains("line 3"), answer.text)
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try s.next(2).map(\.data), ["1", "2"])
            XCTAssertNil(try s.next(timeout: 0.3), "nothing after the bad line was applied")
        }
    }

    func testSSEIngestAtOddBoundariesEqualsTheInput() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let upstream = "event: delta\r\ndata: مرحبا\r\n\r\n: keep-alive\rid: x\rdata: 🚀 line one\rdata: line two\r\r"
                + "event: done\ndata: [DONE]\n\n"
            let bytes = Array(upstream.utf8)
            let post = try openChunkedPost(broker, path: "/v1/channels/\(ch)/events", type: "text/event-stream")
            // Chunks of 1, 2, 3, 5, 7 … bytes: splits land inside CRLF and inside characters.
            var i = 0, size = 1
            while i < bytes.count {
                let end = min(bytes.count, i + size)
                try sendChunk(post, Array(bytes[i..<end]))
                i = end
                size = size == 1 ? 2 : size + (size % 3) + 1
            }
            try endChunks(post)
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 200, answer.text)
            var reference = SSEParser()
            let expected = reference.feed(bytes)
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(expected.count)
            XCTAssertEqual(got.map(\.event), expected.map(\.event), "[\(engine)]")
            XCTAssertEqual(got.map(\.data), expected.map(\.data))
            XCTAssertEqual(got.map(\.data), ["مرحبا", "🚀 line one\nline two", "[DONE]"])
        }
    }

    func testWorkerResendingAfterACutLeavesEachEventOnce() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            func line(_ k: Int) -> String { "{\"producer\":\"gen-42\",\"seq\":\(k),\"data\":\"t\(k)\"}\n" }
            let first = try openChunkedPost(broker, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson")
            try sendChunk(first, Array((1...60).map(line).joined().utf8))
            XCTAssertEqual(try s.next(60, timeout: 5).count, 60)
            first.shutdownWrite()  // the worker's connection dies mid-body
            // It reconnects and resends its last 20 events, then goes on.
            let retry = try openChunkedPost(broker, path: "/v1/channels/\(ch)/events", type: "application/x-ndjson")
            try sendChunk(retry, Array((41...80).map(line).joined().utf8))
            try endChunks(retry)
            let answer = try HTTPResponse.read(from: retry)
            XCTAssertEqual(try JSONParser.parse(answer.body)["duplicates"], .number("20"), "[\(engine)] \(answer.text)")
            let rest = try s.next(20, timeout: 5)
            XCTAssertEqual(rest.map(\.data), (61...80).map { "t\($0)" })
            XCTAssertNil(try s.next(timeout: 0.3))
            let all = try broker.client.subscribe(ch, lastEventID: "earliest").next(100, timeout: 1)
            XCTAssertEqual(all.map(\.data), (1...80).map { "t\($0)" }, "each event exactly once")
        }
    }

    func testPublishToSeveralChannelsInOneRequest() throws {
        try onEachEngine { broker, _ in
            let a = uniqueChannel(), b = uniqueChannel()
            let body = "[{\"channel\":\"\(a)\",\"data\":1},{\"channel\":\"\(b)\",\"data\":2},{\"channel\":\"\(a)\",\"data\":3}]"
            let r = try broker.client.request("POST", "/v1/events", headers: [("Content-Type", "application/json")], body: Array(body.utf8))
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(try JSONParser.parse(r.body)["count"], .number("3"))
            XCTAssertEqual(try broker.client.subscribe(a, lastEventID: "earliest").next(2).map(\.data), ["1", "3"])
            XCTAssertEqual(try broker.client.subscribe(b, lastEventID: "earliest").next(1).map(\.data), ["2"])
            let missing = try broker.client.request("POST", "/v1/events", headers: [("Content-Type", "application/json")],
                                                    body: Array("{\"data\":1}".utf8))
            XCTAssertEqual(missing.status, 400)
            // NDJSON streams to several channels too.
            let nd = "{\"channel\":\"\(b)\",\"data\":4}\n{\"channel\":\"\(a)\",\"data\":5}\n"
            let r2 = try broker.client.request("POST", "/v1/events", headers: [("Content-Type", "application/x-ndjson")], body: Array(nd.utf8))
            XCTAssertEqual(r2.status, 200, r2.text)
            XCTAssertEqual(try broker.client.subscribe(b, lastEventID: "earliest").next(2).map(\.data), ["2", "4"])
        }
    }
}
