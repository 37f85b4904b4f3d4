// Router: maps a path to a route and checks the method, giving 404 and 405 (with
// `Allow`) in one place.
import StarlingCore
import StarlingHTTP
#if canImport(Glibc)
import Glibc
#endif

enum Route {
    case channelEvents(String)
    case channelInfo(String)
    /// Stop: `POST /v1/channels/{ch}/cancel`.
    case channelCancel(String)
    case events
    case healthz, readyz, metrics
    case clientModule, demo

    var allowedMethods: [String] {
        switch self {
        case .channelEvents, .events: return ["GET", "POST", "OPTIONS"]
        case .channelInfo: return ["GET", "OPTIONS"]
        case .channelCancel: return ["POST", "OPTIONS"]
        case .healthz, .readyz, .metrics, .clientModule, .demo: return ["GET"]
        }
    }

    /// The route for the request's path, or an HTTP error (404 unknown, 400 bad channel
    /// name). Read from the path's bytes (every publish passes here): no String is made
    /// but the channel's.
    static func match(_ request: Request) throws -> Route { try request.withPath { try match($0) } }

    static func match(_ u: UnsafeBufferPointer<UInt8>) throws -> Route {
        // /v1/channels/{ch}, /v1/channels/{ch}/events or /v1/channels/{ch}/cancel.
        if let route = try channelRoute(u) { return route }
        func isPath(_ word: StaticString) -> Bool {
            u.count == word.utf8CodeUnitCount && (u.isEmpty || memcmp(u.baseAddress!, word.utf8Start, u.count) == 0)
        }
        if isPath("/healthz") { return .healthz }
        if isPath("/readyz") { return .readyz }
        if isPath("/metrics") { return .metrics }
        if isPath("/v1/events") { return .events }
        if isPath("/starling.js") { return .clientModule }
        if isPath("/") || isPath("/demo") { return .demo }
        throw HTTPError(404, "not_found", "no route for \(String(decoding: u, as: UTF8.self))")
    }

    enum ChannelPath { case info, events, cancel }

    /// A path under `/v1/channels/`: which one, and the channel's bytes as sent (nil for
    /// any other path). The bytes may be empty or hold a "/": no route, for the caller to say.
    static func channelPath(_ u: UnsafeBufferPointer<UInt8>) -> (ChannelPath, raw: UnsafeBufferPointer<UInt8>)? {
        func has(_ word: StaticString, at k: Int) -> Bool {
            k >= 0 && k + word.utf8CodeUnitCount <= u.count && memcmp(u.baseAddress! + k, word.utf8Start, word.utf8CodeUnitCount) == 0
        }
        let prefix = 13  // "/v1/channels/"
        guard has("/v1/channels/", at: 0) else { return nil }
        var end = u.count
        var kind = ChannelPath.info
        if end - prefix > 7, has("/events", at: end - 7) {
            end -= 7
            kind = .events
        } else if end - prefix > 7, has("/cancel", at: end - 7) {
            end -= 7
            kind = .cancel
        }
        return (kind, UnsafeBufferPointer(rebasing: u[prefix..<end]))
    }

    /// A route under `/v1/channels/`, nil for any other path.
    private static func channelRoute(_ u: UnsafeBufferPointer<UInt8>) throws -> Route? {
        guard let (kind, raw) = channelPath(u) else { return nil }
        guard !raw.isEmpty, !raw.contains(0x2F) else {
            throw HTTPError(404, "not_found", "no route for \(String(decoding: u, as: UTF8.self))")
        }
        let channel: String
        if raw.contains(0x25) {
            channel = Request.percentDecode(Substring(String(decoding: raw, as: UTF8.self)))
            guard Names.isValidChannel(channel) else { throw badChannel }
        } else {
            guard Names.isValidChannel(raw) else { throw badChannel }
            channel = String(decoding: raw, as: UTF8.self)
        }
        switch kind {
        case .events: return .channelEvents(channel)
        case .cancel: return .channelCancel(channel)
        case .info: return .channelInfo(channel)
        }
    }

    private static var badChannel: HTTPError {
        HTTPError(400, "bad_channel", "channel names are 1–200 bytes of [A-Za-z0-9._:@-]")
    }

    /// Whether `method` is one of `allowedMethods`, without making that array (every
    /// request asks).
    func allows(_ method: String) -> Bool {
        switch self {
        case .channelEvents, .events: return method == "GET" || method == "POST" || method == "OPTIONS"
        case .channelInfo: return method == "GET" || method == "OPTIONS"
        case .channelCancel: return method == "POST" || method == "OPTIONS"
        case .healthz, .readyz, .metrics, .clientModule, .demo: return method == "GET"
        }
    }

    func check(method: String) throws {
        guard allows(method) else {
            throw HTTPError(405, "method_not_allowed", "\(method) is not allowed here",
                            headers: [("Allow", allowedMethods.joined(separator: ", "))])
        }
    }
}
