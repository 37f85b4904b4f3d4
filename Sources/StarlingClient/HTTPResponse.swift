// HTTPResponse: reads one HTTP/1.1 response off a BlockingConnection (Content-Length
// bodies, or a head only for streams).

public struct HTTPResponse {
    public var status: Int
    /// Names lowercased.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? { headers.first(where: { $0.0 == name.lowercased() })?.1 }
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Reads a head; for a response with Content-Length (or 204), reads its body too.
    /// A stream's head comes back with an empty body and the rest left in the buffer.
    public static func read(from c: BlockingConnection, timeout: Double = 5) throws -> HTTPResponse {
        let sep: [UInt8] = [13, 10, 13, 10]
        try c.read(until: { $0.firstRange(of: sep) != nil }, timeout: timeout)
        guard let end = c.buffer.firstRange(of: sep) else {
            throw ClientError("no response head within \(timeout)s (got \(c.buffer.count) bytes, closed: \(c.peerClosed))")
        }
        let headText = String(decoding: c.buffer[..<end.lowerBound], as: UTF8.self)
        c.buffer.removeSubrange(..<end.upperBound)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ClientError("bad status line") }
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: " " as Character))
        }
        var r = HTTPResponse(status: status, headers: headers, body: [])
        if let len = r.header("content-length").flatMap(Int.init) {
            try c.read(until: { $0.count >= len }, timeout: timeout)
            guard c.buffer.count >= len else { throw ClientError("body shorter than Content-Length") }
            r.body = Array(c.buffer[..<len])
            c.buffer.removeSubrange(..<len)
        }
        return r
    }
}

extension Substring {
    func trimmingCharacters(in c: Character) -> String {
        var s = self
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}
