// TokenSigner: makes Starling tokens — for the tests, and for a `starling token` command
// that operators can use to mint a token for a quick check. The broker never signs.
import JWTKit
import StarlingCore

public struct TokenSigner: Sendable {
    public let algorithmName: String
    private let key: any JWTAlgorithm

    /// HS256 with a shared secret (at least 32 bytes).
    public init(hmacSecret: String) throws {
        guard hmacSecret.utf8.count >= 32 else { throw AuthConfigError("an HS256 secret needs at least 32 bytes") }
        algorithmName = "HS256"
        key = try KeyBridge.hmac(secret: hmacSecret)
    }

    /// RS256 for an RSA private key PEM, ES256 for a P-256 one.
    public init(privateKeyPEM: String) throws {
        if let k = try? KeyBridge.rsaPrivate(pem: privateKeyPEM) {
            algorithmName = "RS256"; key = k
        } else if let k = try? KeyBridge.es256Private(pem: privateKeyPEM) {
            algorithmName = "ES256"; key = k
        } else {
            throw AuthConfigError("the private key is neither RSA (≥ 2048 bits) nor P-256")
        }
    }

    /// A token carrying `{"starling":{"publish":…,"subscribe":…,"cancel":…}}` and the given
    /// times (`cancel` only when given).
    public func token(publish: [String] = [], subscribe: [String] = [], cancel: [String] = [], expiresAt: Int? = nil,
                      notBefore: Int? = nil, subject: String? = nil) throws -> String {
        var members: [(String, JSONValue)] = []
        if let subject { members.append(("sub", .string(subject))) }
        if let expiresAt { members.append(("exp", .number(String(expiresAt)))) }
        if let notBefore { members.append(("nbf", .number(String(notBefore)))) }
        var claims: [(String, JSONValue)] = [
            ("publish", .array(publish.map(JSONValue.string))),
            ("subscribe", .array(subscribe.map(JSONValue.string))),
        ]
        if !cancel.isEmpty { claims.append(("cancel", .array(cancel.map(JSONValue.string)))) }
        members.append(("starling", .object(claims)))
        return try sign(payloadJSON: JSONWriter.compact(.object(members)))
    }

    /// Signs exactly the given JSON texts; the header defaults to this key's `alg`.
    /// (Tests use it to forge headers such as `"alg":"none"`.)
    public func sign(payloadJSON: String, headerJSON: String? = nil) throws -> String {
        let header = headerJSON ?? #"{"alg":"\#(algorithmName)","typ":"JWT"}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payloadJSON.utf8))
        let signature = try key.sign(Array(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }
}
