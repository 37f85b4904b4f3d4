// The one place a BrokerError becomes an HTTP status.
import StarlingCore
import StarlingHTTP

extension BrokerError {
    var httpError: HTTPError {
        let status: Int
        var headers: [(String, String)] = []
        switch kind {
        case .badRequest: status = 400
        case .unauthorized: status = 401; headers = [("WWW-Authenticate", "Bearer")]
        case .forbidden: status = 403
        case .notFound: status = 404
        case .conflict: status = 409
        case .tooLarge: status = 413
        case .unsupportedMedia: status = 415
        case .unavailable: status = 503; headers = [("Retry-After", "1")]
        }
        return HTTPError(status, code, message, headers: headers)
    }
}
