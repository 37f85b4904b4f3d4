// The seams between the HTTP layer and the broker above it.

public protocol HTTPHandler: AnyObject {
    /// A complete request (head and buffered body). Answer with `connection.respond`
    /// (now or later; pipelined answers still go out in request order) or turn the
    /// connection into a stream with `connection.startStream`.
    func handle(_ request: Request, on connection: Connection)
}

public protocol StreamDelegate: AnyObject {
    /// The stream's queue has room again (at most half full): a replay may send its next page.
    func streamHasRoom(_ connection: Connection)
    /// The connection is gone (client left, slow-consumer disconnect, drain).
    func streamDidClose(_ connection: Connection)
}
