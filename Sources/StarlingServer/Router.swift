// Router: maps a path to a route and checks the method, giving 404 and 405 (with
// `Allow`) in one place.
import StarlingCore
import StarlingHTTP

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

    /// The route for `path`, or an HTTP error (404 unknown, 400 bad channel name).
    static func match(_ path: Substring) throws -> Route {
        switch path {
        case "/healthz": return .healthz
        case "/readyz": return .readyz
        case "/metrics": return .metrics
        case "/v1/events": return .events
        case "/starling.js": return .clientModule
        case "/", "/demo": return .demo
        default: break
        }
        // /v1/channels/{ch}, /v1/channels/{ch}/events or /v1/channels/{ch}/cancel, read as
        // bytes without splitting (every publish passes here).
        let u = path.utf8
        guard u.starts(with: Route.channelsPrefix) else { throw HTTPError(404, "not_found", "no route for \(path)") }
        var bytes = path.utf8.dropFirst(Route.channelsPrefix.count)
        var events = false, cancel = false
        if bytes.count > Route.eventsSuffix.count, bytes.reversed().starts(with: Route.eventsSuffix.reversed()) {
            bytes = bytes.dropLast(Route.eventsSuffix.count)
            events = true
        } else if bytes.count > Route.cancelSuffix.count, bytes.reversed().starts(with: Route.cancelSuffix.reversed()) {
            bytes = bytes.dropLast(Route.cancelSuffix.count)
            cancel = true
        }
        guard !bytes.isEmpty, !bytes.contains(0x2F) else { throw HTTPError(404, "not_found", "no route for \(path)") }
        let rest = Substring(bytes)
        let channel = rest.utf8.contains(0x25) ? Request.percentDecode(rest) : String(rest)
        guard Names.isValidChannel(channel) else {
            throw HTTPError(400, "bad_channel", "channel names are 1–200 bytes of [A-Za-z0-9._:@-]")
        }
        return events ? .channelEvents(channel) : cancel ? .channelCancel(channel) : .channelInfo(channel)
    }

    static let channelsPrefix = Array("/v1/channels/".utf8)
    static let eventsSuffix = Array("/events".utf8)
    static let cancelSuffix = Array("/cancel".utf8)

    func check(method: String) throws {
        guard allowedMethods.contains(method) else {
            throw HTTPError(405, "method_not_allowed", "\(method) is not allowed here",
                            headers: [("Allow", allowedMethods.joined(separator: ", "))])
        }
    }
}
