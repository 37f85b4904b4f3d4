// RedisCodec: the Redis engine's data layout in one place, plain Swift: key names, the
// publish script's arguments, stream entries, the pub/sub notification and XINFO STREAM.
// ops/redis/publish.lua writes what this reads; the two change together.
import StarlingCore

enum RedisKeys {
    /// The channel's stream, also the name of its pub/sub notification channel. The hash
    /// tag keeps every key of a channel in one Redis Cluster slot.
    static func stream(_ channel: String) -> String { "starling:{\(channel)}" }

    /// The stream's name as a command argument, with no String made on the way.
    static func addStream(_ channel: String, to command: inout RedisCommand) {
        command.add("starling:{", channel, "}")
    }

    /// The channel of a stream key / notification channel name, nil if not one of ours.
    /// Compared as bytes, as a notification carries the name (String prefix and suffix
    /// tests walk Characters, on every notification).
    static func channel<Bytes: RandomAccessCollection>(fromStream key: Bytes) -> String? where Bytes.Element == UInt8, Bytes.Index == Int {
        let prefix: StaticString = "starling:{"
        let n = prefix.utf8CodeUnitCount
        let s = key.startIndex
        guard key.count > n + 1, key[key.endIndex - 1] == 0x7D else { return nil }
        for k in 0..<n where key[s + k] != prefix.utf8Start[k] { return nil }
        return String(decoding: key[(key.startIndex + n)..<(key.endIndex - 1)], as: UTF8.self)
    }
}

/// One PUBLISH of the script: the events of one batch and the ID of the entry before them.
struct RedisNotification {
    var previous: EventID
    var events: [StoredEvent]
    /// The channel holds a lease (flag `l`): nodes watching it check for its end.
    var leased = false
}

/// What XINFO STREAM tells about a channel's retained history.
struct RedisStreamInfo {
    var length: Int
    var lastGeneratedID: EventID
    /// The newest ID ever removed (trimmed, deleted); 0-0 when none was.
    var maxDeletedID: EventID
    var firstID: EventID?
    var last: StoredEvent?
}

enum RedisCodec {
    /// Adds the script's 7 arguments per event (3 for one plain event) to `command`, each
    /// written straight into the command's buffer.
    static func addPublishArguments(_ drafts: [EventDraft], to command: inout RedisCommand) {
        for d in drafts {
            command.add(d.name)
            switch d.data {
            case .text(let s): command.add(s); command.add("text" as StaticString)
            case .json(let s): command.add(s); command.add("json" as StaticString)
            }
            if drafts.count == 1, isPlain(d) { return }  // the script's 3-argument form
            if let c = d.conflate { command.add(c) } else { command.add("" as StaticString) }
            command.add(d.final ? "1" as StaticString : "0")
            // The script reads a producer without a seq (or the reverse) as no producer, as
            // the memory engine does.
            if let producer = d.producer, let seq = d.seq {
                command.add(producer)
                // `<seq>`, or `<epoch>:<seq>` when the event names an epoch.
                if let epoch = d.epoch { command.add("\(epoch):\(seq)") } else { command.add(Int(seq)) }
            } else {
                command.add("" as StaticString)
                command.add("" as StaticString)
            }
        }
    }

    /// How many arguments `addPublishArguments` adds: 7 per event, or 3 for one plain event.
    static func publishArgumentCount(_ drafts: [EventDraft]) -> Int {
        drafts.count == 1 && isPlain(drafts[0]) ? 3 : 7 * drafts.count
    }

    /// No conflate key, not final, no producer: the script takes it as name, data, kind.
    private static func isPlain(_ d: EventDraft) -> Bool {
        d.conflate == nil && !d.final && (d.producer == nil || d.seq == nil)
    }

    /// The bytes `publishArguments` will take, about (the command's first capacity).
    static func publishArgumentBytes(_ drafts: [EventDraft]) -> Int {
        var n = 48
        for d in drafts {
            n += 7 * 16 + d.name.utf8.count + d.data.wireText.utf8.count + (d.conflate?.utf8.count ?? 0) + (d.producer?.utf8.count ?? 0)
        }
        return n
    }

    /// The script's `SEQGAP|FENCED starling: event [k]: <message>` as the broker's error,
    /// worded as the memory engine words it.
    static func producerError(_ reply: String) -> BrokerError {
        let code = reply.hasPrefix("SEQGAP") ? "producer_seq_gap" : "producer_fenced"
        var rest = Substring(reply)
        for prefix in ["SEQGAP starling: ", "FENCED starling: "] where rest.hasPrefix(prefix) { rest = rest.dropFirst(prefix.count) }
        var index: Int?
        if rest.hasPrefix("event ["), let close = rest.firstIndex(of: "]") {
            index = Int(rest[rest.index(rest.startIndex, offsetBy: 7)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(": ") { rest = rest.dropFirst(2) }
        }
        return BrokerError(.conflict, code, String(rest), eventIndex: index)
    }

    /// An XRANGE/XREVRANGE entry `[id, [field, value, …]]` as a stored event.
    static func event(_ entry: RedisReply, channel: String) -> StoredEvent? {
        guard let parts = entry.elements, parts.count == 2, let idText = parts[0].text,
              let id = EventID(idText), let fields = parts[1].elements else { return nil }
        var name = "message", data = "", kind = "text"
        var conflate: String?
        var final = false
        var i = 0
        while i + 1 < fields.count {
            guard let f = fields[i].text, let v = fields[i + 1].text else { return nil }
            switch f {
            case "e": name = v
            case "d": data = v
            case "k": kind = v
            case "c": conflate = v
            case "f": final = v == "1"
            default: break  // fields a later version may add
            }
            i += 2
        }
        return StoredEvent(channel: channel, id: id, name: name, data: kind == "json" ? .json(data) : .text(data),
                           conflate: conflate, final: final, storedAtMs: id.ms)
    }

    /// A stream entry stored while its channel held a lease (field `l`).
    static func isLeased(_ entry: RedisReply) -> Bool {
        guard let fields = entry.elements?.last?.elements else { return false }
        var i = 0
        while i + 1 < fields.count {
            if fields[i].text == "l" { return true }
            i += 2
        }
        return false
    }

    static func events(_ reply: RedisReply, channel: String) -> [StoredEvent]? {
        guard let entries = reply.elements else { return nil }
        var out: [StoredEvent] = []
        out.reserveCapacity(entries.count)
        for e in entries {
            guard let event = event(e, channel: channel) else { return nil }
            out.append(event)
        }
        return out
    }

    /// Reads a notification: `<len>:<bytes>` fields "v1", previous ID, then 5 per event.
    /// One pass over the bytes, no list of fields (every event a node delivers passes here).
    static func notification(_ bytes: ArraySlice<UInt8>, channel: String) -> RedisNotification? {
        bytes.withUnsafeBufferPointer { b -> RedisNotification? in
            var i = 0
            /// The next field, or nil when the bytes are not `<len>:<bytes>`.
            func field() -> UnsafeBufferPointer<UInt8>? {
                var len = 0
                var digits = 0
                while i < b.count, b[i] >= 48, b[i] <= 57, digits < 12 {
                    len = len * 10 + Int(b[i] - 48); i += 1; digits += 1
                }
                guard digits > 0, i < b.count, b[i] == UInt8(ascii: ":"), b.count - (i + 1) >= len else { return nil }
                let f = UnsafeBufferPointer(rebasing: b[(i + 1)..<(i + 1 + len)])
                i += 1 + len
                return f
            }
            guard let version = field(), version.count == 2, version[0] == UInt8(ascii: "v"), version[1] == UInt8(ascii: "1"),
                  let prev = field() else { return nil }
            guard let previous = prev.isEmpty ? EventID.zero : EventID(bytes: prev) else { return nil }
            var events: [StoredEvent] = []
            var leased = false
            while i < b.count {
                guard let idBytes = field(), let name = field(), let flags = field(), let conflate = field(),
                      let data = field(), let id = EventID(bytes: idBytes) else { return nil }
                let text = String(decoding: data, as: UTF8.self)
                if flags.contains(UInt8(ascii: "l")) { leased = true }
                events.append(StoredEvent(channel: channel, id: id, name: String(decoding: name, as: UTF8.self),
                                          data: flags.first == UInt8(ascii: "j") ? .json(text) : .text(text),
                                          conflate: flags.contains(UInt8(ascii: "c")) ? String(decoding: conflate, as: UTF8.self) : nil,
                                          final: flags.contains(UInt8(ascii: "f")), storedAtMs: id.ms))
            }
            return RedisNotification(previous: previous, events: events, leased: leased)
        }
    }

    /// XINFO STREAM's flat `name, value, …` reply (RESP2).
    static func streamInfo(_ reply: RedisReply, channel: String) -> RedisStreamInfo? {
        guard let items = reply.elements else { return nil }
        var info = RedisStreamInfo(length: 0, lastGeneratedID: .zero, maxDeletedID: .zero, firstID: nil, last: nil)
        var i = 0
        while i + 1 < items.count {
            let value = items[i + 1]
            switch items[i].text {
            case "length"?:
                if case .integer(let n) = value { info.length = Int(n) }
            case "last-generated-id"?:
                info.lastGeneratedID = value.text.flatMap { EventID($0) } ?? .zero
            case "max-deleted-entry-id"?:
                info.maxDeletedID = value.text.flatMap { EventID($0) } ?? .zero
            case "first-entry"?:
                info.firstID = value.elements?.first?.text.flatMap { EventID($0) }
            case "last-entry"?:
                if value.elements != nil { info.last = event(value, channel: channel) }
            default: break
            }
            i += 2
        }
        return info
    }
}
