// BrokerError: the one error type below the HTTP layer. Each kind maps to exactly one
// HTTP status in StarlingServer (HTTPError+Broker.swift), nowhere else.

public struct BrokerError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: Equatable, Sendable {
        case badRequest          // 400
        case unauthorized        // 401
        case forbidden           // 403
        case notFound            // 404
        case conflict            // 409: the channel is final, a producer seq jumps ahead or is fenced
        case tooLarge            // 413
        case unsupportedMedia    // 415
        case unavailable         // 503: the store cannot take it now
    }

    public var kind: Kind
    /// Machine-readable, snake_case: `bad_json`, `event_too_large`, `channel_final` …
    public var code: String
    public var message: String
    /// For an error about one event of a batch: its position in the batch. A streaming
    /// publish uses it to store the events before a refused one.
    public var eventIndex: Int?

    public init(_ kind: Kind, _ code: String, _ message: String, eventIndex: Int? = nil) {
        self.kind = kind; self.code = code; self.message = message; self.eventIndex = eventIndex
    }

    public var description: String { "\(code): \(message)" }
}

public enum UTF8Check {
    /// Offset of the first byte that is not part of valid UTF-8, or nil if all is valid.
    public static func firstInvalidOffset(_ bytes: [UInt8]) -> Int? { bytes.withUnsafeBufferPointer { firstInvalidOffset($0) } }

    public static func firstInvalidOffset(_ bytes: ArraySlice<UInt8>) -> Int? {
        bytes.withUnsafeBufferPointer { firstInvalidOffset($0) }
    }

    public static func firstInvalidOffset(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = bytes.startIndex
        let end = bytes.endIndex
        while i < end {
            let c = bytes[i]
            if c < 0x80 { i += 1; continue }
            let n: Int
            var min: UInt32
            var v: UInt32
            switch c {
            case 0xC2...0xDF: n = 1; v = UInt32(c & 0x1F); min = 0x80
            case 0xE0...0xEF: n = 2; v = UInt32(c & 0x0F); min = 0x800
            case 0xF0...0xF4: n = 3; v = UInt32(c & 0x07); min = 0x10000
            default: return i - bytes.startIndex
            }
            guard end - i > n else { return i - bytes.startIndex }
            for k in 1...n {
                let cc = bytes[i + k]
                guard cc & 0xC0 == 0x80 else { return i - bytes.startIndex }
                v = v << 6 | UInt32(cc & 0x3F)
            }
            if v < min || v > 0x10FFFF || (0xD800...0xDFFF).contains(v) { return i - bytes.startIndex }
            min = 0
            i += n + 1
        }
        return nil
    }
}
