// Authorizer: who may publish and subscribe (SPEC §7). Built once at start-up from an
// AuthConfig; afterwards every call is synchronous, cheap on a cache hit, and safe to
// make from the broker's loop thread (or any thread: the cache sits behind a lock).
//
// Rules, in order: no keys configured → open mode, everything allowed. No token →
// anonymous: subscribe to channels all matching `--public-subscribe` is allowed, anything
// else is 401. A token → it must verify (HS256/RS256/ES256 with a configured key) and be
// within `nbf`…`exp` (± leeway), else 401; then every channel must be in its claims for
// the action (public-subscribe channels count for subscribe too), else 403.
import Foundation
import JWTKit
import StarlingCore

/// What a request wants to do.
public enum AuthAction: Sendable {
    case publish, subscribe
    /// Stop (`POST /v1/channels/{ch}/cancel`): the `cancel` claims, or `publish`.
    case cancel
}

public final class Authorizer: @unchecked Sendable {
    public let config: AuthConfig
    private let verifier: TokenVerifier
    private let publicSubscribe: ChannelPatterns
    private let lock = NSLock()
    private var cache: TokenCache
    private var verifications = 0

    public init(config: AuthConfig) throws {
        self.config = config
        guard let pub = ChannelPatterns(config.publicSubscribe) else {
            let bad = config.publicSubscribe.first { !ChannelPatterns.isValid($0) } ?? ""
            throw AuthConfigError("--public-subscribe pattern '\(bad)' is not a channel name or a prefix followed by *")
        }
        guard config.leewaySeconds >= 0 else { throw AuthConfigError("the JWT leeway must not be negative") }
        publicSubscribe = pub
        var v = TokenVerifier()
        for (i, secret) in config.hmacSecrets.enumerated() {
            // jwt-kit asserts on shorter keys; a short HS256 secret is guessable anyway.
            guard secret.utf8.count >= 32 else {
                throw AuthConfigError("--jwt-secret #\(i + 1) is \(secret.utf8.count) bytes; HS256 needs at least 32")
            }
            v.add(try KeyBridge.hmac(secret: secret), for: .hs256)
        }
        for (i, pem) in config.publicKeyPEMs.enumerated() {
            let (alg, key) = try Authorizer.publicKey(pem: pem, index: i + 1)
            v.add(key, for: alg)
        }
        verifier = v
        isOpen = v.isEmpty
        cache = TokenCache(capacity: config.cacheCapacity)
    }

    /// No key configured: every request is allowed. The CLI must warn loudly.
    /// Stored, not derived from the key table on each call: every publish asks.
    public let isOpen: Bool

    /// The grant of open mode, made once (every publish of an open broker gets it).
    public static let openGrant = Grant(kind: .open, expiresAt: nil, subject: nil, publish: .everything,
                                         subscribe: .everything, cancel: .everything)

    /// Who the token (or its absence) says the caller is, without looking at channels.
    /// Throws 401 for a token that does not verify, has expired or is not yet valid.
    /// For a streaming publish: authenticate at the head, then `grant.check` per event.
    public func authenticate(token: String?, nowSeconds: Int = Authorizer.nowSeconds()) throws(BrokerError) -> Grant {
        if isOpen { return Authorizer.openGrant }
        guard let token, !token.isEmpty else {
            return Grant(kind: .anonymous, expiresAt: nil, subject: nil, publish: .none, subscribe: publicSubscribe,
                         cancel: .none)
        }
        let claims = try verifiedClaims(token, nowSeconds: nowSeconds)
        let leeway = config.leewaySeconds
        if let nbf = claims.notBefore, nowSeconds + leeway < nbf {
            throw BrokerError(.unauthorized, "unauthorized", "the token is not valid before \(nbf)")
        }
        if let exp = claims.expiresAt, nowSeconds >= exp + leeway {
            throw BrokerError(.unauthorized, "unauthorized", "the token expired at \(exp)")
        }
        var subscribe = claims.subscribe
        subscribe.formUnion(publicSubscribe)
        return Grant(kind: .token, expiresAt: claims.expiresAt.map { $0 + leeway }, subject: claims.subject,
                     publish: claims.publish, subscribe: subscribe, cancel: claims.cancel)
    }

    /// The whole check for one request: authenticate, then every channel for `action`.
    /// 401 for a missing/invalid/expired token (and for an anonymous request outside the
    /// public channels), 403 for a valid token outside its claims.
    public func authorize(token: String?, action: AuthAction, channels: [String],
                          nowSeconds: Int = Authorizer.nowSeconds()) throws(BrokerError) -> Grant {
        let grant = try authenticate(token: token, nowSeconds: nowSeconds)
        if grant.kind == .anonymous, action != .subscribe || channels.isEmpty {
            throw BrokerError(.unauthorized, "unauthorized", "a token is required to \(action)")
        }
        try grant.check(action, channels: channels)
        return grant
    }

    /// The `sub` of a token whose signature verifies, whatever its times, for the line that
    /// logs a refusal (an expired token's owner is worth naming; a forged one's claim is not).
    public func verifiedSubject(of token: String) -> String? {
        guard !isOpen else { return nil }
        return try? verifier.verify(token).subject
    }

    /// Signature checks actually performed (cache misses), for metrics and tests.
    public var verificationCount: Int { lock.lock(); defer { lock.unlock() }; return verifications }

    public static func nowSeconds() -> Int { Int(Date().timeIntervalSince1970) }

    private func verifiedClaims(_ token: String, nowSeconds: Int) throws(BrokerError) -> TokenClaims {
        lock.lock()
        if let hit = cache.lookup(token, nowSeconds: nowSeconds) { lock.unlock(); return hit }
        verifications += 1
        lock.unlock()
        let claims = try verifier.verify(token)
        lock.lock()
        cache.insert(token, claims, evictAt: claims.expiresAt.map { $0 + config.leewaySeconds }, nowSeconds: nowSeconds)
        lock.unlock()
        return claims
    }

    /// A `--jwt-public-key` PEM: RSA (RS256, ≥ 2048 bits) or P-256 (ES256), public only.
    private static func publicKey(pem: String, index: Int) throws -> (TokenVerifier.Algorithm, any JWTAlgorithm) {
        let what = "--jwt-public-key #\(index)"
        if pem.contains("PRIVATE KEY") {
            throw AuthConfigError("\(what) is a private key; give the broker the public key only")
        }
        guard pem.contains("-----BEGIN") else { throw AuthConfigError("\(what) is not PEM text") }
        let rsaError: any Error
        do { return (.rs256, try KeyBridge.rsaPublic(pem: pem)) } catch { rsaError = error }
        if let key = try? KeyBridge.es256Public(pem: pem) { return (.es256, key) }
        if "\(rsaError)".contains("keySizeTooSmall") {
            throw AuthConfigError("\(what) is an RSA key shorter than 2048 bits")
        }
        throw AuthConfigError("\(what) is neither an RSA (≥ 2048 bits) nor a P-256 public key")
    }
}
