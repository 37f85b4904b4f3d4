// ParserCallbacks: the C callbacks of Node's http_parser, bridged to the Connection
// that owns each parser (through `parser.data`). Nothing else touches http_parser.
import CHTTPParser

// Written once here, only read afterwards (by every loop's thread): safe to share.
nonisolated(unsafe) let parserSettings: UnsafeMutablePointer<http_parser_settings> = {
    let s = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    s.initialize(to: http_parser_settings())
    s.pointee.on_message_begin = { p in owner(p).parserMessageBegin() }
    s.pointee.on_url = { p, at, n in owner(p).parserURL(UnsafeRawBufferPointer(start: at, count: n)) }
    s.pointee.on_header_field = { p, at, n in owner(p).parserHeaderField(UnsafeRawBufferPointer(start: at, count: n)) }
    s.pointee.on_header_value = { p, at, n in owner(p).parserHeaderValue(UnsafeRawBufferPointer(start: at, count: n)) }
    s.pointee.on_headers_complete = { p in owner(p).parserHeadersComplete() }
    s.pointee.on_body = { p, at, n in owner(p).parserBody(UnsafeRawBufferPointer(start: at, count: n)) }
    s.pointee.on_message_complete = { p in owner(p).parserMessageComplete() }
    return s
}()

@inline(__always) private func owner(_ p: UnsafeMutablePointer<http_parser>?) -> Connection {
    Unmanaged<Connection>.fromOpaque(p!.pointee.data).takeUnretainedValue()
}

/// Facts read off a parser, in Swift terms.
struct ParserFacts {
    static func method(_ p: UnsafeMutablePointer<http_parser>) -> String {
        // The common ones as literals: no String is read from C for every request.
        switch http_method(rawValue: UInt32(p.pointee.method)) {
        case HTTP_POST: return "POST"
        case HTTP_GET: return "GET"
        case HTTP_OPTIONS: return "OPTIONS"
        case let m: return String(cString: http_method_str(m))
        }
    }
    static func keepAlive(_ p: UnsafeMutablePointer<http_parser>) -> Bool { http_should_keep_alive(p) != 0 }
    static func errno(_ p: UnsafeMutablePointer<http_parser>) -> http_errno { http_errno(rawValue: UInt32(p.pointee.http_errno)) }
    static func errorText(_ p: UnsafeMutablePointer<http_parser>) -> String {
        String(cString: http_errno_description(errno(p)))
    }
    static func contentLength(_ p: UnsafeMutablePointer<http_parser>) -> UInt64 { p.pointee.content_length }
}
