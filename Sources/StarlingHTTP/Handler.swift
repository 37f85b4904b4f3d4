// The seams between the HTTP layer and the broker above it.

public protocol HTTPHandler: AnyObject {
    /// A complete request (head and buffered body). Answer with `connection.respond`
    /// (now or later; pipelined answers still go out in request order) or turn the
    /// connection into a stream with `connection.startStream`.
    func handle(_ request: Request, on connection: Connection)

    /// Called when a head is complete: return a consumer to receive the body as it
    /// arrives (a long-lived ingest stream, no total size limit), or nil to have it
    /// buffered up to the body limit and passed to `handle`.
    func bodyStream(for request: Request, on connection: Connection) -> BodyStream?

    /// The fast lane: a complete plain request (PlainRequest.swift), offered before any
    /// Request is made for it. Return false to have it read the usual way (nothing may have
    /// been done). To take it, call `connection.acceptPlain()` and answer that sequence with
    /// `connection.respond(sequence:…)` or `respondOK(sequence:json:)`, now or later.
    func takePlain(_ request: PlainRequestBytes, on connection: Connection) -> Bool
}

extension HTTPHandler {
    public func bodyStream(for request: Request, on connection: Connection) -> BodyStream? { nil }
    public func takePlain(_ request: PlainRequestBytes, on connection: Connection) -> Bool { false }
}

/// Receives a request body chunk by chunk. The consumer answers the request itself
/// (usually after `end`, or early with an error that closes the connection).
public protocol BodyStream: AnyObject {
    func receive(_ bytes: UnsafeRawBufferPointer)
    func end()
}

public protocol StreamDelegate: AnyObject {
    /// The stream's queue has room again (at most half full): a replay may send its next page.
    func streamHasRoom(_ connection: Connection)
    /// The connection is gone (client left, slow-consumer disconnect, drain).
    func streamDidClose(_ connection: Connection)
}
