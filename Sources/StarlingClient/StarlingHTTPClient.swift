// StarlingHTTPClient: the broker's API from Swift, one blocking call at a time.
import StarlingCore

public struct StarlingHTTPClient {
    public let host: String
    public let port: Int

    public init(host: String = "127.0.0.1", port: Int) { self.host = host; self.port = port }

    /// One request on a fresh connection; returns the whole response.
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = [],
                        timeout: Double = 5) throws -> HTTPResponse {
        let c = try BlockingConnection(host: host, port: port)
        try c.send(Self.format(method, path, headers: headers, body: body, host: host))
        return try HTTPResponse.read(from: c, timeout: timeout)
    }

    public static func format(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = [],
                              host: String = "127.0.0.1") -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    /// Publishes a JSON body (an event object or an array) to `channel`.
    public func publish(_ channel: String, json: String) throws -> HTTPResponse {
        try request("POST", "/v1/channels/\(channel)/events", headers: [("Content-Type", "application/json")], body: Array(json.utf8))
    }

    /// Publishes one event with string data; returns its ID.
    @discardableResult
    public func publish(_ channel: String, data: String, event: String? = nil, conflate: String? = nil,
                        final: Bool = false) throws -> String {
        var fields = ["\"data\":\(JSONWriter.quoted(data))"]
        if let event { fields.append("\"event\":\(JSONWriter.quoted(event))") }
        if let conflate { fields.append("\"conflate\":\(JSONWriter.quoted(conflate))") }
        if final { fields.append("\"final\":true") }
        let r = try publish(channel, json: "{\(fields.joined(separator: ","))}")
        guard r.status == 200, let id = try JSONParser.parse(r.body)["last"]?.stringValue else {
            throw ClientError("publish answered \(r.status): \(r.text)")
        }
        return id
    }

    /// Opens an SSE subscription; the head is read, events are read with `next`.
    public func subscribe(_ channel: String, lastEventID: String? = nil, query: String = "",
                          headers: [(String, String)] = [], receiveBuffer: Int? = nil) throws -> SSEStream {
        let c = try BlockingConnection(host: host, port: port, receiveBuffer: receiveBuffer)
        var h = headers
        if let lastEventID { h.append(("Last-Event-ID", lastEventID)) }
        try c.send(Self.format("GET", "/v1/channels/\(channel)/events\(query)", headers: [("Accept", "text/event-stream")] + h))
        let head = try HTTPResponse.read(from: c)
        return SSEStream(connection: c, head: head)
    }
}

/// An open SSE response read with the project's SSEParser.
public final class SSEStream {
    public let connection: BlockingConnection
    public let head: HTTPResponse
    public private(set) var parser = SSEParser()
    private var ready: [SSEMessage] = []

    public init(connection: BlockingConnection, head: HTTPResponse) {
        self.connection = connection
        self.head = head
        ready = parser.feed(connection.buffer)
        connection.buffer.removeAll()
    }

    /// The next event, or nil if none arrives within `timeout` or the stream ends.
    public func next(timeout: Double = 5) throws -> SSEMessage? {
        let deadline = Clock.now() + timeout
        while ready.isEmpty {
            let left = deadline - Clock.now()
            if left <= 0 || connection.peerClosed { return nil }
            if try connection.fill(timeout: left) {
                ready = parser.feed(connection.buffer)
                connection.buffer.removeAll()
            }
        }
        return ready.removeFirst()
    }

    /// Reads `count` events (fewer if the stream stalls for `timeout` or ends).
    public func next(_ count: Int, timeout: Double = 5) throws -> [SSEMessage] {
        var out: [SSEMessage] = []
        while out.count < count, let m = try next(timeout: timeout) { out.append(m) }
        return out
    }

    /// Reads until the server closes the stream; returns the events read.
    public func readToEnd(timeout: Double = 5) throws -> [SSEMessage] {
        var out: [SSEMessage] = []
        while let m = try next(timeout: timeout) { out.append(m) }
        return out
    }

    /// Comment lines (heartbeats) seen so far.
    public var comments: Int { parser.comments }

    /// Waits up to `timeout` for more bytes, feeding the parser (heartbeats count).
    public func pump(timeout: Double) throws {
        if try connection.fill(timeout: timeout) {
            ready += parser.feed(connection.buffer)
            connection.buffer.removeAll()
        }
    }
}
