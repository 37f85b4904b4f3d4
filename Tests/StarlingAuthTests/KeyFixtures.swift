// Keys for the auth tests: RSA and P-256 pairs made once per run with the openssl CLI
// (the test target cannot import swift-crypto), plus a fixed clock and a shared secret.
import Foundation
import XCTest
@testable import StarlingAuth
import StarlingCore

enum Fixtures {
    static let now = 1_800_000_000
    static let secret = "s3cret-s3cret-s3cret-s3cret-0123456789"
    static let otherSecret = "another-secret-another-secret-another"

    struct KeyPair { let privatePEM: String; let publicPEM: String }

    static let rsa: KeyPair = makePair(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    static let rsa2: KeyPair = makePair(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    static let rsaSmall: KeyPair = makePair(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])
    static let ec: KeyPair = makePair(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    static let ec384: KeyPair = makePair(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])

    static func hs256(_ secret: String = Fixtures.secret) -> TokenSigner { try! TokenSigner(hmacSecret: secret) }
    static var rs256: TokenSigner { try! TokenSigner(privateKeyPEM: rsa.privatePEM) }
    static var es256: TokenSigner { try! TokenSigner(privateKeyPEM: ec.privatePEM) }

    static func authorizer(secrets: [String] = [Fixtures.secret], pems: [String] = [],
                           publicSubscribe: [String] = [], cacheCapacity: Int = 100) -> Authorizer {
        try! Authorizer(config: AuthConfig(hmacSecrets: secrets, publicKeyPEMs: pems, publicSubscribe: publicSubscribe,
                                           cacheCapacity: cacheCapacity))
    }

    private static func makePair(_ genArgs: [String]) -> KeyPair {
        let priv = openssl(genArgs, input: nil)
        let pub = openssl(["pkey", "-pubout"], input: priv)
        return KeyPair(privatePEM: priv, publicPEM: pub)
    }

    private static func openssl(_ args: [String], input: String?) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        let out = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardInput = inp
        p.standardError = FileHandle.nullDevice
        try! p.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try! inp.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        precondition(p.terminationStatus == 0, "openssl \(args) failed")
        return String(decoding: data, as: UTF8.self)
    }
}

/// Asserts that `body` throws a BrokerError of `kind`.
func XCTAssertAuthError<T>(_ kind: StarlingCore.BrokerError.Kind, _ body: @autoclosure () throws -> T,
                           _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected \(kind), got success. \(message)", file: file, line: line)
    } catch let e as StarlingCore.BrokerError {
        XCTAssertEqual(e.kind, kind, "\(e) \(message)", file: file, line: line)
        XCTAssertEqual(e.code, kind == .unauthorized ? "unauthorized" : "forbidden", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

func base64url(_ s: String) -> String { Base64URL.encode(Array(s.utf8)) }
