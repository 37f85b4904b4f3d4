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
        Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(text.utf8))
    }

    /// The head and body; `Content-Length` is added unless `stream` (an SSE body that
    /// runs until the connection closes).
    public func serialized(close: Bool, stream: Bool = false) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Response.reason(status))\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !stream { head += "Content-Length: \(body.count)\r\n" }
        if close || stream { head += "Connection: close\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        out.append(contentsOf: body)
        return out
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
