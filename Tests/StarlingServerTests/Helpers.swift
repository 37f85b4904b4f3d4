// Small helpers shared by the broker tests: raw requests, JSON fields, metrics.
import StarlingClient
import StarlingCore
import XCTest

extension BrokerProcess {
    /// One raw request on a fresh connection; the whole response.
    func raw(_ bytes: [UInt8], timeout: Double = 5) throws -> HTTPResponse {
        let c = try BlockingConnection(port: port)
        try c.send(bytes)
        return try HTTPResponse.read(from: c, timeout: timeout)
    }

    func raw(_ text: String, timeout: Double = 5) throws -> HTTPResponse { try raw(Array(text.utf8), timeout: timeout) }

    /// A counter from /metrics.
    func metric(_ name: String) throws -> Int {
        let r = try client.request("GET", "/metrics")
        for line in r.text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ")[1]) ?? -1
        }
        throw ClientError("no metric \(name)")
    }

    /// Publishes `count` events with data "prefix-N" (N from `from`), in batches; returns their IDs.
    @discardableResult
    func publishNumbered(_ channel: String, count: Int, from: Int = 1, prefix: String = "e", batch: Int = 50) throws -> [String] {
        var ids: [String] = []
        var n = from
        while n < from + count {
            let k = min(batch, from + count - n)
            let body = "[" + (n..<(n + k)).map { "{\"data\":\"\(prefix)-\($0)\"}" }.joined(separator: ",") + "]"
            let r = try client.publish(channel, json: body)
            guard r.status == 200 else { throw ClientError("publish: \(r.status) \(r.text)") }
            let v = try JSONParser.parse(r.body)
            let first = EventID(v["first"]!.stringValue!)!
            let last = EventID(v["last"]!.stringValue!)!
            // IDs of one batch are consecutive in the channel: rebuild them from first/last.
            var id = first
            for _ in 0..<k {
                ids.append(id.description)
                id = EventID(ms: id.ms, seq: id.seq + 1)
            }
            XCTAssertEqual(ids.last, last.description, "batch IDs are consecutive")
            n += k
        }
        return ids
    }
}

/// The `error.code` of a JSON error body.
func errorCode(_ r: HTTPResponse) -> String? {
    (try? JSONParser.parse(r.body))?["error"]?["code"]?.stringValue
}

