// Connection limits, idle keep-alive timeout and the SIGTERM drain (SPEC §7), over real
// sockets against the real process.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class RobustnessTests: XCTestCase {
    func testConnectionLimitAnswers503WhileExistingSubscribersKeepReceiving() throws {
        try onEachEngine(["--max-connections", "3"]) { b, engine in
            let ch = uniqueChannel()
            let s1 = try b.client.subscribe(ch)
            let s2 = try b.client.subscribe(ch)
            let publisher = try BlockingConnection(port: b.port)  // the third, kept alive
            try publisher.send(StarlingHTTPClient.format("GET", "/healthz"))
            XCTAssertEqual(try HTTPResponse.read(from: publisher).status, 200)
            let refused = try b.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(refused.status, 503, "[\(engine)]")
            XCTAssertEqual(refused.header("retry-after"), "1")
            XCTAssertEqual(errorCode(refused), "too_many_connections")
            try publisher.send(StarlingHTTPClient.format("POST", "/v1/channels/\(ch)/events",
                                                         headers: [("Content-Type", "text/plain")], body: Array("still".utf8)))
            XCTAssertEqual(try HTTPResponse.read(from: publisher).status, 200)
            XCTAssertEqual(try s1.next()?.data, "still")
            XCTAssertEqual(try s2.next()?.data, "still")
        }
    }

    func testPerAddressLimitAnswers503AcrossLoopsAndFreesTheSlotAtClose() throws {
        try onEachEngine(["--max-connections-per-address", "3"]) { b, run in
            let ch = uniqueChannel()
            var held = try (0..<3).map { _ in try b.client.subscribe(ch) }  // spread over the loops
            let refused = try b.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(refused.status, 503, "[\(run)] a fourth connection from 127.0.0.1")
            XCTAssertEqual(refused.header("retry-after"), "1")
            XCTAssertEqual(errorCode(refused), "too_many_connections_from_address")
            held.removeLast()  // closes one
            var answered: HTTPResponse?
            for _ in 0..<50 {  // the broker sees the close within a loop turn
                answered = try b.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if answered?.status == 200 { break }
                Thread.sleep(forTimeInterval: 0.02)
            }
            XCTAssertEqual(answered?.status, 200, "[\(run)] the slot came back")
            _ = held
        }
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        try onEachEngine(["--idle-timeout", "1"]) { b, _ in
            let c = try BlockingConnection(port: b.port)
            try c.send(StarlingHTTPClient.format("GET", "/healthz"))
            XCTAssertEqual(try HTTPResponse.read(from: c).status, 200)
            XCTAssertTrue(try c.waitForClose(timeout: 3), "closed after the idle timeout")
            // A subscriber is not "idle": heartbeats keep it.
            let s = try b.client.subscribe(uniqueChannel())
            XCTAssertFalse(try s.connection.waitForClose(timeout: 1.5))
        }
    }

    func testSIGTERMDrainsSubscribersAndFinishesAStreamingPublish() throws {
        for engine in Engine.all { for threads in LoopCounts.all {
            let ch = uniqueChannel()
            let b = try BrokerProcess(try engine.arguments() + ["--threads", "\(threads)"])
            let s = try b.client.subscribe(ch)
            let post = try BlockingConnection(port: b.port)
            try post.send("POST /v1/channels/\(ch)/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
            func chunk(_ text: String) throws {
                try post.send(Array(String(text.utf8.count, radix: 16).utf8) + [13, 10] + Array(text.utf8) + [13, 10])
            }
            try chunk("{\"data\":\"d1\"}\n{\"data\":\"d2\"}\n")
            XCTAssertEqual(try s.next(2).map(\.data), ["d1", "d2"])
            kill(b.process.processIdentifier, SIGTERM)
            Thread.sleep(forTimeInterval: 0.3)
            // New connections are refused or reset while draining.
            let late = try? b.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 1)
            XCTAssertNotEqual(late?.status, 200, "[\(engine)] no new work while draining")
            // The publish in flight goes on and is answered.
            try chunk("{\"data\":\"d3\"}\n")
            try post.send("0\r\n\r\n")
            let answer = try HTTPResponse.read(from: post)
            XCTAssertEqual(answer.status, 200, answer.text)
            XCTAssertEqual(try JSONParser.parse(answer.body)["count"], .number("3"))
            XCTAssertEqual(answer.header("connection"), "close")
            // The subscriber's stream ended cleanly at the drain, so it reconnects elsewhere
            // (and gets d3 from the shared store there).
            XCTAssertEqual(try s.readToEnd(timeout: 5).map(\.data), [])
            XCTAssertTrue(s.connection.peerClosed)
            b.process.waitUntilExit()
            XCTAssertEqual(b.process.terminationStatus, 0)
            if engine == .redis {
                // Every accepted event is in the store for the next process.
                let again = try BrokerProcess(try engine.arguments())
                defer { again.terminate() }
                XCTAssertEqual(try again.client.subscribe(ch, lastEventID: "earliest").next(3).map(\.data), ["d1", "d2", "d3"])
            }
        } }
    }
}
