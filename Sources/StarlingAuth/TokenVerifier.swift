// TokenVerifier: a compact JWS → its Starling claims, or the reason it is refused.
// The header's `alg` picks the key list and nothing else: HS256 is tried only against
// `--jwt-secret` secrets, RS256 only against RSA public keys, ES256 only against P-256
// keys, so `alg: none` and algorithm confusion (a public key's PEM used as an HMAC
// secret) find no key. Signatures are checked by jwt-kit's algorithms; the JSON and the
// claims are read here with StarlingCore's strict parser.
import Foundation
import JWTKit
import StarlingCore

/// The parts of a verified token the broker uses.
struct TokenClaims: Equatable, Sendable {
    var expiresAt: Int?      // `exp`, seconds
    var notBefore: Int?      // `nbf`, seconds
    var subject: String?
    var publish: ChannelPatterns
    var subscribe: ChannelPatterns
    var cancel = ChannelPatterns.none
}

struct TokenVerifier {
    /// Longer tokens are refused before any parsing.
    static let maxTokenBytes = 8192

    enum Algorithm: String, CaseIterable { case hs256 = "HS256", rs256 = "RS256", es256 = "ES256" }

    private var keys: [Algorithm: [any JWTAlgorithm]] = [:]

    var isEmpty: Bool { keys.values.allSatisfy(\.isEmpty) }

    mutating func add(_ key: any JWTAlgorithm, for alg: Algorithm) { keys[alg, default: []].append(key) }

    /// Signature, header and claim shape; not the clock (the cache keeps claims across time).
    func verify(_ token: String) throws(BrokerError) -> TokenClaims {
        let bytes = Array(token.utf8)
        guard bytes.count <= TokenVerifier.maxTokenBytes else { throw invalid("the token is longer than \(TokenVerifier.maxTokenBytes) bytes") }
        let dots = bytes.indices.filter { bytes[$0] == 0x2E }
        guard dots.count == 2 else { throw invalid("the token is not three base64url parts") }
        let headerPart = bytes[..<dots[0]], payloadPart = bytes[(dots[0] + 1)..<dots[1]], signaturePart = bytes[(dots[1] + 1)...]

        guard let headerBytes = Base64URL.decode(headerPart),
              let header = try? JSONParser.parse(headerBytes), case .object = header
        else { throw invalid("the token header is not base64url JSON") }
        guard let algName = header["alg"]?.stringValue else { throw invalid("the token header has no alg") }
        guard let alg = Algorithm(rawValue: algName) else { throw invalid("algorithm \(algName) is not accepted") }
        if header["crit"] != nil { throw invalid("the token header has crit extensions") }
        guard let candidates = keys[alg], !candidates.isEmpty else { throw invalid("no \(alg.rawValue) key is configured") }

        guard let signature = Base64URL.decode(signaturePart) else { throw invalid("the token signature is not base64url") }
        let signingInput = bytes[..<dots[1]]
        let signed = candidates.contains { key in (try? key.verify(signature, signs: signingInput)) == true }
        guard signed else { throw invalid("the token signature does not match any configured key") }

        guard let payloadBytes = Base64URL.decode(payloadPart),
              let payload = try? JSONParser.parse(payloadBytes), case .object = payload
        else { throw invalid("the token payload is not base64url JSON") }
        return try TokenVerifier.claims(from: payload)
    }

    static func claims(from payload: JSONValue) throws(BrokerError) -> TokenClaims {
        let exp = try numericDate(payload, "exp")
        let nbf = try numericDate(payload, "nbf")
        var subject: String?
        if let sub = payload["sub"] {
            guard let s = sub.stringValue else { throw invalid("sub is not a string") }
            subject = s
        }
        var publish = ChannelPatterns.none, subscribe = ChannelPatterns.none, cancel = ChannelPatterns.none
        if let starling = payload["starling"] {
            guard case .object = starling else { throw invalid("the starling claim is not an object") }
            publish = try patterns(starling["publish"], "publish")
            subscribe = try patterns(starling["subscribe"], "subscribe")
            cancel = try patterns(starling["cancel"], "cancel")
        }
        return TokenClaims(expiresAt: exp, notBefore: nbf, subject: subject, publish: publish, subscribe: subscribe,
                           cancel: cancel)
    }

    /// RFC 7519 NumericDate: a JSON number of seconds, possibly fractional; we keep whole
    /// seconds (rounded down — `exp` only gets earlier, `nbf` earlier by under a second).
    private static func numericDate(_ payload: JSONValue, _ name: String) throws(BrokerError) -> Int? {
        guard let value = payload[name] else { return nil }
        guard case .number(let text) = value, let d = Double(text), d.isFinite,
              d > -9.0e15, d < 9.0e15 else { throw invalid("\(name) is not a number of seconds") }
        return Int(d.rounded(.down))
    }

    private static func patterns(_ value: JSONValue?, _ name: String) throws(BrokerError) -> ChannelPatterns {
        guard let value else { return .none }
        guard case .array(let items) = value else { throw invalid("starling.\(name) is not an array") }
        var texts: [String] = []
        for item in items {
            guard let s = item.stringValue else { throw invalid("starling.\(name) holds a non-string") }
            texts.append(s)
        }
        guard let p = ChannelPatterns(texts) else { throw invalid("starling.\(name) holds an invalid channel pattern") }
        return p
    }

}

private func invalid(_ why: String) -> BrokerError { BrokerError(.unauthorized, "unauthorized", "invalid token: \(why)") }
