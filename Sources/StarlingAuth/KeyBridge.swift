// KeyBridge: the signature algorithms of SPEC §7 as jwt-kit `JWTAlgorithm`s, made
// synchronously from swift-crypto keys (jwt-kit 5 hands out its own only through an
// async key collection). Verification runs on the loop thread, so it must not suspend.
import Crypto
import FoundationEssentials
import CryptoExtras
import JWTKit

enum KeyBridge {
    /// An RSA key under 2048 bits (the text is what the broker's error message looks for).
    struct KeySizeTooSmall: Error, CustomStringConvertible { var description: String { "keySizeTooSmall" } }

    static func hmac(secret: String) throws -> any JWTAlgorithm { HS256(key: SymmetricKey(data: Array(secret.utf8))) }

    static func rsaPublic(pem: String) throws -> any JWTAlgorithm {
        let key = try _RSA.Signing.PublicKey(unsafePEMRepresentation: pem)
        guard key.keySizeInBits >= 2048 else { throw KeySizeTooSmall() }
        return RS256(publicKey: key, privateKey: nil)
    }

    static func rsaPrivate(pem: String) throws -> any JWTAlgorithm {
        let key = try _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem)
        guard key.keySizeInBits >= 2048 else { throw KeySizeTooSmall() }
        return RS256(publicKey: key.publicKey, privateKey: key)
    }

    static func es256Public(pem: String) throws -> any JWTAlgorithm {
        ES256(publicKey: try P256.Signing.PublicKey(pemRepresentation: pem), privateKey: nil)
    }

    static func es256Private(pem: String) throws -> any JWTAlgorithm {
        let key = try P256.Signing.PrivateKey(pemRepresentation: pem)
        return ES256(publicKey: key.publicKey, privateKey: key)
    }
}

/// The signer's key is missing: this algorithm only verifies.
struct VerifyOnly: Error {}

/// HS256: HMAC-SHA256; the comparison is constant-time (swift-crypto's).
private struct HS256: JWTAlgorithm {
    let key: SymmetricKey
    var name: String { "HS256" }

    func sign(_ plaintext: some DataProtocol) throws -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(plaintext), using: key))
    }

    func verify(_ signature: some DataProtocol, signs plaintext: some DataProtocol) throws -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(Array(signature), authenticating: Array(plaintext), using: key)
    }
}

/// RS256: RSASSA-PKCS1-v1_5 with SHA-256 (the JWT standard's padding, hence `insecure…`).
private struct RS256: JWTAlgorithm {
    let publicKey: _RSA.Signing.PublicKey
    let privateKey: _RSA.Signing.PrivateKey?
    var name: String { "RS256" }

    func sign(_ plaintext: some DataProtocol) throws -> [UInt8] {
        guard let privateKey else { throw VerifyOnly() }
        return Array(try privateKey.signature(for: SHA256.hash(data: Array(plaintext)), padding: .insecurePKCS1v1_5).rawRepresentation)
    }

    func verify(_ signature: some DataProtocol, signs plaintext: some DataProtocol) throws -> Bool {
        publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: Array(signature)),
                                   for: SHA256.hash(data: Array(plaintext)), padding: .insecurePKCS1v1_5)
    }
}

/// ES256: ECDSA on P-256 with SHA-256; signatures are the 64-byte r‖s of RFC 7518.
private struct ES256: JWTAlgorithm {
    let publicKey: P256.Signing.PublicKey
    let privateKey: P256.Signing.PrivateKey?
    var name: String { "ES256" }

    func sign(_ plaintext: some DataProtocol) throws -> [UInt8] {
        guard let privateKey else { throw VerifyOnly() }
        return Array(try privateKey.signature(for: SHA256.hash(data: Array(plaintext))).rawRepresentation)
    }

    func verify(_ signature: some DataProtocol, signs plaintext: some DataProtocol) throws -> Bool {
        guard let s = try? P256.Signing.ECDSASignature(rawRepresentation: Array(signature)) else { return false }
        return publicKey.isValidSignature(s, for: SHA256.hash(data: Array(plaintext)))
    }
}
