// Payload: what a publisher sends and a subscriber reads back. The event data is a JSON
// object {"t":<monotonic ns at send>,"seq":<per-channel sequence>,"pad":"xx…"}; the
// latency and all correctness accounting come from it, never from server event IDs
// (Nchan's differ from Starling's).

public enum Payload {
    /// The data object for one event, padded so the whole object is about `size` bytes.
    public static func make(seq: UInt64, sentNs: UInt64, size: Int) -> String {
        let head = "{\"t\":\(sentNs),\"seq\":\(seq),\"pad\":\""
        let padCount = max(0, size - head.utf8.count - 2)
        return head + String(repeating: "x", count: padCount) + "\"}"
    }

    /// Reads `t` and `seq` back out of event data, without a full JSON parse (the
    /// subscriber side is the load tool's own bottleneck). Nil when they are missing.
    public static func read(_ data: String) -> (sentNs: UInt64, seq: UInt64)? {
        var data = data
        return data.withUTF8 { b -> (UInt64, UInt64)? in
            guard let t = number(after: tKey, in: b, from: 0),
                  let s = number(after: seqKey, in: b, from: t.end) else { return nil }
            return (t.value, s.value)
        }
    }

    private static let tKey = Array("\"t\":".utf8)
    private static let seqKey = Array("\"seq\":".utf8)

    private static func number(after key: [UInt8], in b: UnsafeBufferPointer<UInt8>, from start: Int) -> (value: UInt64, end: Int)? {
        var i = start
        let last = b.count - key.count
        while i <= last {
            var k = 0
            while k < key.count, b[i + k] == key[k] { k += 1 }
            if k == key.count {
                var j = i + k
                var v: UInt64 = 0
                var digits = 0
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                    v = v &* 10 &+ UInt64(b[j] - 0x30)
                    j += 1
                    digits += 1
                }
                return digits > 0 ? (v, j) : nil
            }
            i += 1
        }
        return nil
    }
}

/// Fills the URL and body templates: `{ch}` is the channel name, `{payload}` the data object.
public struct Templates: Sendable {
    public var publishPath: String
    public var subscribePath: String
    public var body: String
    public var contentType: String

    public init(publishPath: String = "/v1/channels/{ch}/events", subscribePath: String = "/v1/channels/{ch}/events",
                body: String = "{\"data\":{payload}}", contentType: String = "application/json") {
        self.publishPath = publishPath
        self.subscribePath = subscribePath
        self.body = body
        self.contentType = contentType
    }

    /// Nchan's defaults in the bench config: POST /pub/{ch}, GET /sub/{ch}, raw body.
    public static let nchan = Templates(publishPath: "/pub/{ch}", subscribePath: "/sub/{ch}", body: "{payload}")

    public func publishPath(_ channel: String) -> String { publishPath.replacingAll("{ch}", with: channel) }
    public func subscribePath(_ channel: String) -> String { subscribePath.replacingAll("{ch}", with: channel) }

    /// The body split around `{payload}`, so each publish only concatenates.
    public var bodyParts: (String, String) {
        guard let r = body.range(of: "{payload}") else { return (body, "") }
        return (String(body[..<r.lowerBound]), String(body[r.upperBound...]))
    }
}

extension String {
    func replacingAll(_ target: String, with value: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += value
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
