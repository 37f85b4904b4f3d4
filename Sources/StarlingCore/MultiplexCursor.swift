// MultiplexCursor: the `id:` of a multiplexed stream (SPEC §4): one opaque value that
// holds the position of every channel of the subscription, so one Last-Event-ID
// resumes all of them. Layout (opaque to clients, stable for us):
//   m1:<pos>,<pos>,…:<check>
// one position per channel in subscription order (`<ms>-<seq>`, or empty for "nothing
// yet": resume from the start), and an FNV-1a checksum over the channel list and the
// positions, so a cursor edited by hand or meant for another channel set is refused.

public enum MultiplexCursor {
    public static func encode(channels: [String], positions: [EventID?]) -> String {
        let body = positions.map { $0?.description ?? "" }.joined(separator: ",")
        return "m1:\(body):\(checksum(channels: channels, body: body))"
    }

    /// The positions, or nil when the cursor is malformed, tampered with, or for other channels.
    public static func decode(_ text: String, channels: [String]) -> [EventID?]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "m1" else { return nil }
        let body = String(parts[1])
        guard String(parts[2]) == checksum(channels: channels, body: body) else { return nil }
        let fields = body.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == channels.count else { return nil }
        var out: [EventID?] = []
        for f in fields {
            if f.isEmpty { out.append(nil); continue }
            guard let id = EventID(f) else { return nil }
            out.append(id)
        }
        return out
    }

    static func checksum(channels: [String], body: String) -> String {
        var h: UInt32 = 2_166_136_261
        func mix(_ bytes: String.UTF8View) { for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 } }
        for c in channels { mix(c.utf8); mix("\n".utf8) }
        mix("|".utf8)
        mix(body.utf8)
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
