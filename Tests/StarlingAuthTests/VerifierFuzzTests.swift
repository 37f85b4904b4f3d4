// Random and mutated tokens into the verifier: it must never crash, never throw anything
// but 401, and never accept a token that differs by even one byte from a signed one.
// Seeded like the core property tests (STARLING_FUZZ_SEED, STARLING_FUZZ_SCALE).
import Foundation
import XCTest
@testable import StarlingAuth
import StarlingCore

private struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0...xs.count - 1)] }

    static func runSeed(_ test: String) -> UInt64 {
        if let s = ProcessInfo.processInfo.environment["STARLING_FUZZ_SEED"], let v = UInt64(s) { return v }
        let v = UInt64.random(in: 1...UInt64.max)
        print("\(test): STARLING_FUZZ_SEED=\(v)")
        return v
    }
    static let scale = ProcessInfo.processInfo.environment["STARLING_FUZZ_SCALE"].flatMap(Int.init) ?? 1
}

final class VerifierFuzzTests: XCTestCase {
    let now = Fixtures.now
    static let b64 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private func expect401(_ auth: Authorizer, _ token: String, _ why: @autoclosure () -> String) {
        do {
            let g = try auth.authorize(token: token, action: .subscribe, channels: ["a"], nowSeconds: now)
            XCTFail("accepted \(token) as \(g): \(why())")
        } catch {
            XCTAssertEqual(error.kind, .unauthorized, why())
        }
    }

    func testRandomTokensAreRefused() {
        let seed = XorShift.runSeed(#function)
        var r = XorShift(seed: seed)
        let auth = Fixtures.authorizer(pems: [Fixtures.rsa.publicPEM, Fixtures.ec.publicPEM])
        for _ in 0..<3000 * XorShift.scale {
            var t = ""
            switch r.int(0...2) {
            case 0: // base64url-looking segments
                t = (0..<r.int(1...4)).map { _ in String(decoding: (0..<r.int(0...40)).map { _ in r.pick(Self.b64) }, as: UTF8.self) }
                    .joined(separator: ".")
            case 1: // random bytes, made a String however they decode
                t = String(decoding: (0..<r.int(0...80)).map { _ in UInt8(r.int(0...255)) }, as: UTF8.self)
            default: // real JSON headers with random algs and junk after
                let alg = r.pick(["none", "HS256", "RS256", "ES256", "HS512", "", "RS256 ", "ES256\u{0}"])
                t = base64url(#"{"alg":"\#(alg)"}"#) + "." + base64url(#"{"starling":{"subscribe":["*"]}}"#) + "."
                    + String(decoding: (0..<r.int(0...90)).map { _ in r.pick(Self.b64) }, as: UTF8.self)
            }
            expect401(auth, t, "seed \(seed)")
        }
    }

    func testEveryMutationOfASignedTokenIsRefused() throws {
        let seed = XorShift.runSeed(#function)
        var r = XorShift(seed: seed)
        let auth = Fixtures.authorizer(pems: [Fixtures.rsa.publicPEM, Fixtures.ec.publicPEM], cacheCapacity: 0)
        let signers = [Fixtures.hs256(), Fixtures.rs256, Fixtures.es256]
        let originals = try signers.map { try $0.token(publish: ["x"], subscribe: ["a"], expiresAt: now + 60) }
        for t in originals { XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now)) }
        for _ in 0..<600 * XorShift.scale {
            let original = r.pick(originals)
            var b = Array(original.utf8)
            for _ in 0..<r.int(1...3) {
                let i = r.int(0...b.count - 1)
                switch r.int(0...3) {
                case 0: b[i] = r.pick(Self.b64)
                case 1: b[i] ^= UInt8(1 << r.int(0...7))
                case 2: b.remove(at: i)
                default: b.insert(r.pick(Self.b64 + [0x2E, 0x3D, 0x20]), at: i)
                }
            }
            let mutated = String(decoding: b, as: UTF8.self)
            if mutated == original { continue }
            expect401(auth, mutated, "seed \(seed): mutation of a valid token accepted")
        }
    }

    func testForgedHeadersAreRefusedUnlessTheAlgIsExactlyTheKeys() throws {
        let seed = XorShift.runSeed(#function)
        var r = XorShift(seed: seed)
        let auth = Fixtures.authorizer()
        let signer = Fixtures.hs256()
        let keys = ["alg", "typ", "kid", "crit", "jku", "x5u", "jwk", "b64", "ALG"]
        let values = [#""HS256""#, #""none""#, #""RS256""#, "null", "1", "[]", "{}", #""JWT""#, #"["alg"]"#, "false", #""HS256\u0000""#]
        for _ in 0..<800 * XorShift.scale {
            let fields = (0..<r.int(0...4)).map { _ in (r.pick(keys), r.pick(values)) }
            let header = "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
            let t = try signer.sign(payloadJSON: #"{"starling":{"subscribe":["a"]}}"#, headerJSON: header)
            let algs = fields.filter { $0.0 == "alg" }.map(\.1)
            // Duplicate keys: StarlingCore's JSON keeps the first, as `header["alg"]` reads it.
            let shouldPass = algs.first == #""HS256""# && !fields.contains { $0.0 == "crit" }
            if shouldPass {
                XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now), "seed \(seed): \(header)")
            } else {
                expect401(auth, t, "seed \(seed): \(header)")
            }
        }
    }

    func testRandomClaimsNeverCrashAndNeverWidenTheGrant() throws {
        let seed = XorShift.runSeed(#function)
        var r = XorShift(seed: seed)
        let auth = Fixtures.authorizer()
        let signer = Fixtures.hs256()
        let patterns = [#""a""#, #""a*""#, #""*""#, #""a.*""#, #""""#, #""a**""#, "1", "null", #""b""#, #""x y""#]
        for _ in 0..<800 * XorShift.scale {
            let subscribe = (0..<r.int(0...3)).map { _ in r.pick(patterns) }
            let exp = r.pick(["", #","exp":\#(now + 100)"#, #","exp":\#(now - 100)"#, #","exp":"soon""#, #","exp":1e308"#, #","exp":-1.5"#])
            let payload = #"{"starling":{"subscribe":[\#(subscribe.joined(separator: ","))]}\#(exp)}"#
            let t = try signer.sign(payloadJSON: payload)
            for channel in ["a", "a.b", "b", "ab"] {
                do {
                    _ = try auth.authorize(token: t, action: .subscribe, channels: [channel], nowSeconds: now)
                    // Granted: then some listed pattern really admits the channel.
                    let admitted = subscribe.contains { p in
                        p == #""*""# || p == "\"\(channel)\"" || (p.hasSuffix(#"*""#) && channel.hasPrefix(String(p.dropFirst().dropLast(2))))
                    }
                    XCTAssertTrue(admitted, "seed \(seed): \(payload) granted \(channel)")
                } catch {
                    XCTAssertTrue(error.kind == .unauthorized || error.kind == .forbidden, "seed \(seed)")
                }
            }
        }
    }

    func testBase64URLRoundTripsAndIsStrict() {
        let seed = XorShift.runSeed(#function)
        var r = XorShift(seed: seed)
        for _ in 0..<3000 * XorShift.scale {
            let bytes = (0..<r.int(0...40)).map { _ in UInt8(r.int(0...255)) }
            let text = Base64URL.encode(bytes)
            XCTAssertEqual(Base64URL.decode(Array(text.utf8)), bytes, "seed \(seed)")
            XCTAssertEqual(Base64URL.encode(Base64URL.decode(Array(text.utf8)) ?? []), text)
            // Any other text that decodes must re-encode to itself: one text per byte string.
            var other = Array(text.utf8)
            if !other.isEmpty { other[r.int(0...other.count - 1)] = r.pick(Self.b64 + [0x3D, 0x2B, 0x2F]) }
            if let decoded = Base64URL.decode(other) {
                XCTAssertEqual(Base64URL.encode(decoded), String(decoding: other, as: UTF8.self), "seed \(seed)")
            }
        }
        XCTAssertNil(Base64URL.decode(Array("QQ==".utf8)))
        XCTAssertNil(Base64URL.decode(Array("QR".utf8)), "non-zero leftover bits")
        XCTAssertNil(Base64URL.decode(Array("Q".utf8)))
        XCTAssertEqual(Base64URL.decode(Array("QQ".utf8)), [0x41])
    }
}
