// Router: maps a path to a route and checks the method, giving 404 and 405 (with
// `Allow`) in one place.
import StarlingCore
import StarlingHTTP

enum Route {
    case channelEvents(String)
    case channelInfo(String)
    case events
    case healthz, readyz, metrics
    case clientModule, demo

    var allowedMethods: [String] {
        switch self {
        case .channelEvents, .events: return ["GET", "POST", "OPTIONS"]
        case .channelInfo: return ["GET", "OPTIONS"]
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
        // /v1/channels/{ch} or /v1/channels/{ch}/events, read without splitting (every
        // publish passes here).
        let prefix = "/v1/channels/"
        guard path.hasPrefix(prefix) else { throw HTTPError(404, "not_found", "no route for \(path)") }
        var rest = path.dropFirst(prefix.count)
        var events = false
        if rest.hasSuffix("/events") {
            rest = rest.dropLast("/events".count)
            events = true
        }
        guard !rest.isEmpty, !rest.utf8.contains(0x2F) else { throw HTTPError(404, "not_found", "no route for \(path)") }
        let channel = rest.utf8.contains(0x25) ? Request.percentDecode(rest) : String(rest)
        guard Names.isValidChannel(channel) else {
            throw HTTPError(400, "bad_channel", "channel names are 1–200 bytes of [A-Za-z0-9._:@-]")
        }
        return events ? .channelEvents(channel) : .channelInfo(channel)
    }

    func check(method: String) throws {
        guard allowedMethods.contains(method) else {
            throw HTTPError(405, "method_not_allowed", "\(method) is not allowed here",
                            headers: [("Allow", allowedMethods.joined(separator: ", "))])
        }
    }
}
