// The verified-token cache: one signature check per token, bounded, and never a way
// around exp.
import Foundation
import XCTest
@testable import StarlingAuth

final class TokenCacheTests: XCTestCase {
    let now = Fixtures.now

    func testAThousandSubscribersWithOneTokenCostOneVerification() throws {
        let auth = Fixtures.authorizer(pems: [Fixtures.rsa.publicPEM])
        let t = try Fixtures.rs256.token(subscribe: ["a"], expiresAt: now + 60)
        for i in 0..<1000 {
            XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + i % 30))
        }
        XCTAssertEqual(auth.verificationCount, 1)
    }

    func testACachedTokenStillExpires() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now + 10)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 15))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 16))
    }

    func testACachedNotYetValidTokenBecomesValid() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a"], notBefore: now + 100)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 100))
        XCTAssertEqual(auth.verificationCount, 1)
    }

    func testForgedTokensAreNotCached() throws {
        let auth = Fixtures.authorizer()
        let forged = try Fixtures.hs256(Fixtures.otherSecret).token(subscribe: ["a"])
        for _ in 0..<3 {
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: forged, action: .subscribe, channels: ["a"], nowSeconds: now))
        }
        XCTAssertEqual(auth.verificationCount, 3)
    }

    func testTheCacheIsBounded() throws {
        let auth = Fixtures.authorizer(cacheCapacity: 4)
        let tokens = try (0..<10).map { try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now + 60, subject: "u\($0)") }
        for t in tokens { _ = try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now) }
        XCTAssertEqual(auth.verificationCount, 10)
        _ = try auth.authorize(token: tokens[9], action: .subscribe, channels: ["a"], nowSeconds: now)
        XCTAssertEqual(auth.verificationCount, 10, "the newest is kept")
        _ = try auth.authorize(token: tokens[0], action: .subscribe, channels: ["a"], nowSeconds: now)
        XCTAssertEqual(auth.verificationCount, 11, "the oldest was evicted")
    }

    func testExpiredEntriesGoFirstAndOrderStaysBounded() {
        var cache = TokenCache(capacity: 3)
        let claims = TokenClaims(expiresAt: nil, notBefore: nil, subject: nil, publish: .none, subscribe: .none)
        cache.insert("short", claims, evictAt: now + 1, nowSeconds: now)
        cache.insert("long1", claims, evictAt: now + 100, nowSeconds: now)
        cache.insert("long2", claims, evictAt: nil, nowSeconds: now)
        cache.insert("new", claims, evictAt: nil, nowSeconds: now + 2)
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.lookup("short", nowSeconds: now + 2))
        XCTAssertNotNil(cache.lookup("long1", nowSeconds: now + 2))
        XCTAssertNotNil(cache.lookup("long2", nowSeconds: now + 2))
        for i in 0..<10_000 { cache.insert("t\(i)", claims, evictAt: now + 3 + i % 7, nowSeconds: now + i % 11) }
        XCTAssertLessThanOrEqual(cache.count, 3)
        XCTAssertNotNil(cache.lookup("t9999", nowSeconds: now))
    }

    func testConcurrentCallersShareTheCacheSafely() throws {
        let auth = Fixtures.authorizer(pems: [Fixtures.ec.publicPEM], cacheCapacity: 16)
        let tokens = try (0..<40).map { try Fixtures.es256.token(subscribe: ["a"], expiresAt: Fixtures.now + 60, subject: "u\($0)") }
        let failures = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for k in 0..<200 {
                let t = tokens[(worker * 7 + k) % tokens.count]
                do { _ = try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: Fixtures.now) } catch { failures.add() }
            }
        }
        XCTAssertEqual(failures.value, 0)
        XCTAssertGreaterThanOrEqual(auth.verificationCount, 40)
    }
}

private final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
