// RedisReply: one RESP2 reply copied out of hiredis into plain Swift, so everything above
// the thin connection wrapper reads replies without touching a C pointer.

enum RedisReply: Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisReply])

    /// A bulk or status reply as text.
    var text: String? {
        switch self {
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        default: return nil
        }
    }

    var bytes: [UInt8]? {
        if case .bulk(let b) = self { return b }
        return nil
    }

    var elements: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

    var errorMessage: String? {
        if case .error(let e) = self { return e }
        return nil
    }
}
