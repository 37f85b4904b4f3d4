// SSEParser: the text/event-stream format, inbound, as the WHATWG spec dispatches it.
// Incremental: feed it chunks split anywhere (inside a CRLF, inside a multi-byte
// UTF-8 character) and it yields the same events as for the whole stream.

public struct SSEMessage: Equatable, Sendable {
    /// The last event ID in force when this event was dispatched (nil if none yet).
    public var id: String?
    public var event: String
    public var data: String
    public init(id: String?, event: String, data: String) { self.id = id; self.event = event; self.data = data }
}

public struct SSEParser {
    private var line: [UInt8] = []
    private var sawCR = false
    private var atStart = true
    private var dataLines: [UInt8] = []
    private var hasData = false
    private var eventName: String?
    public private(set) var lastEventID: String?
    public private(set) var retry: Int?
    /// Comment lines seen so far (heartbeats), counted rather than kept.
    public private(set) var comments = 0

    public init() {}

    /// Feeds bytes; returns the events they complete, in order.
    public mutating func feed(_ bytes: [UInt8]) -> [SSEMessage] { bytes.withUnsafeBytes { feed($0) } }

    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> [SSEMessage] { bytes.withUnsafeBytes { feed($0) } }

    /// The concrete entry point: the load tool parses every byte of every stream here.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [SSEMessage] {
        var out: [SSEMessage] = []
        for b in bytes {
            if sawCR {
                sawCR = false
                if b == 0x0A { continue }  // the LF of a CRLF split across chunks or not
            }
            if b == 0x0D {
                sawCR = true
                endLine(&out)
            } else if b == 0x0A {
                endLine(&out)
            } else {
                line.append(b)
            }
        }
        return out
    }

    private mutating func endLine(_ out: inout [SSEMessage]) {
        defer { line.removeAll(keepingCapacity: true) }
        if atStart {
            atStart = false
            if line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }
        }
        if line.isEmpty { dispatch(&out); return }
        if line[0] == 0x3A { comments += 1; return }
        var field = line[...]
        var value: ArraySlice<UInt8> = []
        if let colon = line.firstIndex(of: 0x3A) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        }
        switch String(decoding: field, as: UTF8.self) {
        case "data":
            if hasData { dataLines.append(0x0A) }
            dataLines.append(contentsOf: value)
            hasData = true
        case "event":
            eventName = String(decoding: value, as: UTF8.self)
        case "id":
            if !value.contains(0) { lastEventID = String(decoding: value, as: UTF8.self) }
        case "retry":
            if !value.isEmpty, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                retry = Int(String(decoding: value, as: UTF8.self))
            }
        default:
            break
        }
    }

    private mutating func dispatch(_ out: inout [SSEMessage]) {
        defer { dataLines.removeAll(keepingCapacity: true); hasData = false; eventName = nil }
        guard hasData else { return }
        let name = (eventName?.isEmpty ?? true) ? "message" : eventName!
        out.append(SSEMessage(id: lastEventID, event: name, data: String(decoding: dataLines, as: UTF8.self)))
    }
}
