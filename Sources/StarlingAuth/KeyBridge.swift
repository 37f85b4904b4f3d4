// KeyBridge: jwt-kit 5 hands out its signature algorithms only through the async
// JWTKeyCollection actor. We take each key's `JWTAlgorithm` out once, at start-up, and
// from then on call its synchronous `verify(_:signs:)` / `sign(_:)` on the loop thread.
// Blocks the calling thread briefly: call it from plain threads (main, tests), never
// from inside a Swift-concurrency task.
import Dispatch
import JWTKit

enum KeyBridge {
    private final class Box: @unchecked Sendable {
        var result: Result<any JWTAlgorithm, any Error> = .failure(AuthConfigError("key not loaded"))
    }

    static func algorithm(_ add: @escaping @Sendable (JWTKeyCollection) async throws -> Void) throws -> any JWTAlgorithm {
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                let keys = JWTKeyCollection()
                try await add(keys)
                box.result = .success(try await keys.getKey())
            } catch {
                box.result = .failure(error)
            }
            done.signal()
        }
        done.wait()
        return try box.result.get()
    }

    static func hmac(secret: String) throws -> any JWTAlgorithm {
        let key = HMACKey(from: secret)
        return try algorithm { await $0.add(hmac: key, digestAlgorithm: .sha256) }
    }

    static func rsaPublic(pem: String) throws -> any JWTAlgorithm {
        let key = try Insecure.RSA.PublicKey(pem: pem)
        return try algorithm { await $0.add(rsa: key, digestAlgorithm: .sha256) }
    }

    static func rsaPrivate(pem: String) throws -> any JWTAlgorithm {
        let key = try Insecure.RSA.PrivateKey(pem: pem)
        return try algorithm { await $0.add(rsa: key, digestAlgorithm: .sha256) }
    }

    static func es256Public(pem: String) throws -> any JWTAlgorithm {
        let key = try ES256PublicKey(pem: pem)
        return try algorithm { await $0.add(ecdsa: key) }
    }

    static func es256Private(pem: String) throws -> any JWTAlgorithm {
        let key = try ES256PrivateKey(pem: pem)
        return try algorithm { await $0.add(ecdsa: key) }
    }
}
