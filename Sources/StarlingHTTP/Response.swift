// Response: a status, headers and a body, serialized to HTTP/1.1 bytes in one place.
import StarlingCore

public struct Response {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }

    public static func json(_ status: Int, _ text: String, headers: [(String, String)] = []) -> Response {
        Response(status: status, headers: headers.isEmpty ? jsonHeaders : jsonHeaders + headers, body: Array(text.utf8))
    }

    /// A JSON answer whose body is already bytes (the publish answer).
    public static func json(_ status: Int, bytes: [UInt8]) -> Response {
        Response(status: status, headers: jsonHeaders, body: bytes)
    }

    /// Shared by every JSON answer: one array, retained, never rebuilt.
    static let jsonHeaders = [("Content-Type", "application/json")]

    /// The head and body; `Content-Length` is added unless `stream` (an SSE body that
    /// runs until the connection closes).
    public func serialized(close: Bool, stream: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + body.count)
        serialize(into: &out, close: close, stream: stream)
        return out
    }

    /// Appends the head and body to `out` (a connection's buffer of answers due, so a
    /// batch of pipelined answers is one buffer and one write).
    public func serialize(into out: inout [UInt8], close: Bool, stream: Bool = false) {
        // Written as bytes: every publish answer passes here. Its head is a constant up to
        // the length: one copy of it.
        if status == 200, !stream, headers.count == 1, headers[0] == Response.jsonHeaders[0] {
            return body.withUnsafeBytes { Response.appendJSON200($0, close: close, to: &out) }
        }
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        Response.appendDecimal(status, to: &out)
        out.append(0x20)
        out.append(contentsOf: Response.reason(status).utf8)
        out.append(0x0D); out.append(0x0A)
        for (name, value) in headers {
            out.append(contentsOf: name.utf8)
            out.append(0x3A); out.append(0x20)
            out.append(contentsOf: value.utf8)
            out.append(0x0D); out.append(0x0A)
        }
        if !stream {
            out.append(contentsOf: "Content-Length: ".utf8)
            Response.appendDecimal(body.count, to: &out)
            out.append(0x0D); out.append(0x0A)
        }
        if close || stream { out.append(contentsOf: "Connection: close\r\n".utf8) }
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: body)
    }

    /// `200 OK` with a JSON body: a constant head up to the length, then the body.
    /// Composed on the stack and appended in one step (every publish is answered here):
    /// one capacity check and one copy, where a piece at a time took six.
    static func appendJSON200(_ body: UnsafeRawBufferPointer, close: Bool, to out: inout [UInt8]) {
        let head: StaticString = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        let closing: StaticString = "Connection: close\r\n"
        let most = head.utf8CodeUnitCount + 20 + 2 + closing.utf8CodeUnitCount + 2 + body.count
        withUnsafeTemporaryAllocation(byteCount: most, alignment: 1) { buffer in
            var w = ByteWriter(buffer)
            w.put(head)
            w.put(decimal: UInt64(body.count))
            w.put("\r\n")
            if close { w.put(closing) }
            w.put("\r\n")
            w.put(body.bindMemory(to: UInt8.self))
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[..<w.count]))
        }
    }

    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n >= 10 { appendDecimal(n / 10, to: &out) }
        out.append(UInt8(0x30 + n % 10))
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

/// An HTTP-level error: status, machine code and message, rendered as the JSON error
/// body of SPEC §7: `{"error":{"code":…,"message":…}}`.
public struct HTTPError: Error {
    public var status: Int
    public var code: String
    public var message: String
    public var headers: [(String, String)]

    public init(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) {
        self.status = status; self.code = code; self.message = message; self.headers = headers
    }

    public var response: Response {
        .json(status, "{\"error\":{\"code\":\(JSONWriter.quoted(code)),\"message\":\(JSONWriter.quoted(message))}}",
              headers: headers)
    }
}
