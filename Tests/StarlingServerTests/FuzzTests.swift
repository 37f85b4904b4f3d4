// The HTTP request path under random and mutated input, over real sockets: the broker
// never crashes, answers every well-formed request after a bad one, and keeps serving.
import StarlingClient
import StarlingCore
import XCTest

final class FuzzTests: XCTestCase {
    struct XorShift: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
    }

    static let seeds: [String] = [
        "GET /v1/channels/a/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1-0\r\n\r\n",
        "POST /v1/channels/a/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n[{\"data\":1},{\"data\":\"x\"}]\r\n",
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n{\"channel\":\"a\",\"data\":1}\n\r\n0\r\n\r\n",
        "POST /v1/channels/a/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/event-stream\r\nContent-Length: 22\r\n\r\nevent: x\ndata: y\n\n\n\n",
        "GET /v1/events?channel=a&channel=b HTTP/1.1\r\nHost: x\r\nLast-Event-ID: m1:1-0,:00000000\r\n\r\n",
        "OPTIONS /v1/channels/a/events HTTP/1.1\r\nHost: x\r\nOrigin: https://o\r\n\r\n",
    ]

    func testRandomAndMutatedRequestsNeverTakeTheBrokerDown() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["STARLING_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("FuzzTests seed \(seed)")
        var rng = XorShift(state: seed)
        try onEachEngine(["--head-timeout", "1"]) { b, engine in
            for round in 0..<300 {
                var bytes = Array(Self.seeds.randomElement(using: &rng)!.utf8)
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: i)
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                    default: bytes.insert(contentsOf: bytes[i..<min(bytes.count, i + 16)], at: i)
                    }
                    if bytes.isEmpty { bytes = [0] }
                }
                let c = try BlockingConnection(port: b.port)
                try? c.send(bytes)
                c.shutdownWrite()
                _ = try? c.waitForClose(timeout: 0.05)
                if round % 50 == 49 {
                    let r = try b.client.request("GET", "/healthz")
                    XCTAssertEqual(r.status, 200, "[\(engine)] seed \(seed) round \(round)")
                }
            }
            XCTAssertTrue(b.process.isRunning, "[\(engine)] seed \(seed): the broker survived")
            let ch = uniqueChannel()
            let s = try b.client.subscribe(ch)
            try b.client.publish(ch, data: "alive")
            XCTAssertEqual(try s.next()?.data, "alive")
        }
    }
}
