// CORS: lets pages on the configured origins use EventSource and fetch across origins.
// The request's Origin is echoed (never `*` on the wire) so cookies and credentials work.
import StarlingHTTP

struct CORS {
    let origins: [String]

    /// Headers for an actual response, empty unless the origin is allowed.
    func headers(for request: Request) -> [(String, String)] {
        guard !origins.isEmpty, let origin = request.header("origin"),
              origins.contains("*") || origins.contains(origin) else { return [] }
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin")]
    }

    /// The answer to an `OPTIONS` preflight on a route allowing `methods`.
    func preflight(for request: Request, methods: [String]) -> Response {
        var headers = self.headers(for: request)
        if !headers.isEmpty {
            headers += [
                ("Access-Control-Allow-Methods", methods.joined(separator: ", ")),
                ("Access-Control-Allow-Headers", "Content-Type, Authorization, Last-Event-ID, Cache-Control"),
                ("Access-Control-Max-Age", "600"),
            ]
        }
        return Response(status: 204, headers: headers + [("Allow", methods.joined(separator: ", "))])
    }
}
