// AuthConfig: what the operator configured (SPEC §7). Plain values; the Authorizer checks
// them once at start-up and refuses a bad key with an AuthConfigError that names it.
import Foundation

public struct AuthConfig: Sendable {
    /// HS256 secrets (`--jwt-secret`, repeatable). Each must be at least 32 bytes.
    public var hmacSecrets: [String]
    /// RS256 (RSA ≥ 2048 bits) or ES256 (P-256) public keys, PEM text (`--jwt-public-key FILE`).
    public var publicKeyPEMs: [String]
    /// Channel patterns anonymous subscribers may use (`--public-subscribe PATTERN`).
    public var publicSubscribe: [String]
    /// The cookie read when neither `Authorization` nor `?access_token=` carries a token.
    public var cookieName: String
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    public var leewaySeconds: Int
    /// How many verified tokens are remembered (token text → claims).
    public var cacheCapacity: Int

    public init(hmacSecrets: [String] = [], publicKeyPEMs: [String] = [], publicSubscribe: [String] = [],
                cookieName: String = "starling_token", leewaySeconds: Int = 5, cacheCapacity: Int = 10_000) {
        self.hmacSecrets = hmacSecrets
        self.publicKeyPEMs = publicKeyPEMs
        self.publicSubscribe = publicSubscribe
        self.cookieName = cookieName
        self.leewaySeconds = leewaySeconds
        self.cacheCapacity = cacheCapacity
    }

    /// No key at all: the broker runs open (and must say so loudly).
    public var hasKeys: Bool { !hmacSecrets.isEmpty || !publicKeyPEMs.isEmpty }

    /// Reads a `--jwt-public-key` file; the error names the path.
    public static func readKeyFile(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuthConfigError("cannot read key file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw AuthConfigError("key file \(path) is not PEM text")
        }
        return text
    }
}

/// A configuration the broker must not start with; `message` is meant for the operator.
public struct AuthConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
