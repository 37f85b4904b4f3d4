// The authorization rules of SPEC §7, one behaviour per test, against a fixed clock.
import XCTest
@testable import StarlingAuth
import StarlingCore

final class AuthorizerTests: XCTestCase {
    let now = Fixtures.now

    func testWithoutKeysTheBrokerIsOpen() throws {
        let auth = try Authorizer(config: AuthConfig())
        XCTAssertTrue(auth.isOpen)
        let g = try auth.authorize(token: nil, action: .publish, channels: ["anything"], nowSeconds: now)
        XCTAssertEqual(g.kind, .open)
        XCTAssertNil(g.expiresAt)
        XCTAssertEqual(try auth.authorize(token: "garbage", action: .subscribe, channels: ["a", "b"], nowSeconds: now).kind, .open)
        XCTAssertFalse(Fixtures.authorizer().isOpen)
    }

    func testMissingTokenIs401ForPublishAndSubscribe() {
        let auth = Fixtures.authorizer()
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .publish, channels: ["a"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: "", action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testHS256TokenWithinItsClaimsIsGranted() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(publish: ["orders"], subscribe: ["orders", "news"], expiresAt: now + 60, subject: "alice")
        let g = try auth.authorize(token: t, action: .publish, channels: ["orders"], nowSeconds: now)
        XCTAssertEqual(g.kind, .token)
        XCTAssertEqual(g.subject, "alice")
        XCTAssertEqual(g.expiresAt, now + 60 + 5, "expiresAt is exp plus the leeway")
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["orders", "news"], nowSeconds: now))
    }

    func testChannelOutsideTheClaimsIs403() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(publish: ["orders"], subscribe: ["news"], expiresAt: now + 60)
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .publish, channels: ["news"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["orders"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["other"], nowSeconds: now))
    }

    func testTokenWithoutStarlingClaimMayDoNothing() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().sign(payloadJSON: #"{"sub":"bob","exp":\#(now + 60)}"#)
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
    }

    func testMultiplexedSubscriptionNeedsEveryChannel() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a", "b"], expiresAt: now + 60)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a", "b"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["a", "b", "c"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["c", "a"], nowSeconds: now))
    }

    func testPatternClaimAdmitsExactlyItsPrefix() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(publish: ["chat.*"], subscribe: ["user:42.*", "exact"], expiresAt: now + 60)
        for ok in ["chat.room1", "chat.a.b.c", "chat.", "chat.-_:@"] {
            XCTAssertNoThrow(try auth.authorize(token: t, action: .publish, channels: [ok], nowSeconds: now), ok)
        }
        for bad in ["chat", "chatroom", "Chat.room", "xchat.room", "cha", "chat_room", "chat:room"] {
            XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .publish, channels: [bad], nowSeconds: now), bad)
        }
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["user:42.inbox", "exact"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["user:420.inbox"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["exact2"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["exac"], nowSeconds: now))
    }

    func testStarAloneAdmitsEveryChannel() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(publish: ["*"], expiresAt: now + 60)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .publish, channels: ["a", "zz.top", "x:y@z"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testExpiredTokenIs401AndTheLeewayIsFiveSeconds() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 4))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 5))
        let old = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now - 3600)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: old, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testNotYetValidTokenIs401() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now + 3600, notBefore: now + 60)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 55))
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now + 60))
    }

    func testFractionalAndMissingTimesAreAccepted() throws {
        let auth = Fixtures.authorizer()
        let frac = try Fixtures.hs256().sign(payloadJSON: #"{"exp":\#(now + 10).75,"nbf":\#(now - 1).5,"starling":{"subscribe":["a"]}}"#)
        XCTAssertEqual(try auth.authorize(token: frac, action: .subscribe, channels: ["a"], nowSeconds: now).expiresAt, now + 15)
        let forever = try Fixtures.hs256().token(subscribe: ["a"])
        XCTAssertNil(try auth.authorize(token: forever, action: .subscribe, channels: ["a"], nowSeconds: now).expiresAt)
    }

    func testMalformedTimesAndClaimsAre401() throws {
        let auth = Fixtures.authorizer()
        for payload in [#"{"exp":"tomorrow","starling":{"subscribe":["a"]}}"#,
                        #"{"nbf":null,"starling":{"subscribe":["a"]}}"#,
                        #"{"exp":1e999,"starling":{"subscribe":["a"]}}"#,
                        #"{"starling":{"subscribe":"a"}}"#,
                        #"{"starling":{"subscribe":[1]}}"#,
                        #"{"starling":{"subscribe":["a*b"]}}"#,
                        #"{"starling":{"subscribe":["**"]}}"#,
                        #"{"starling":{"subscribe":["sp ace"]}}"#,
                        #"{"starling":["a"]}"#,
                        #"{"sub":7,"starling":{"subscribe":["a"]}}"#,
                        #"["not","an","object"]"#,
                        #"not json"#] {
            let t = try Fixtures.hs256().sign(payloadJSON: payload)
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now), payload)
        }
    }

    func testWrongKeyIs401() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256(Fixtures.otherSecret).token(subscribe: ["a"], expiresAt: now + 60)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
        let rsaAuth = Fixtures.authorizer(secrets: [], pems: [Fixtures.rsa2.publicPEM])
        let r = try Fixtures.rs256.token(subscribe: ["a"], expiresAt: now + 60)
        XCTAssertAuthError(.unauthorized, try rsaAuth.authorize(token: r, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testEverySecretAndKeyIsTried() throws {
        let auth = Fixtures.authorizer(secrets: [Fixtures.otherSecret, Fixtures.secret], pems: [Fixtures.rsa2.publicPEM, Fixtures.rsa.publicPEM])
        let h = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now + 60)
        let r = try Fixtures.rs256.token(subscribe: ["a"], expiresAt: now + 60)
        XCTAssertNoThrow(try auth.authorize(token: h, action: .subscribe, channels: ["a"], nowSeconds: now))
        XCTAssertNoThrow(try auth.authorize(token: r, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testTamperedPayloadIs401() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(subscribe: ["a"], expiresAt: now + 60)
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        let forged = parts[0] + "." + base64url(#"{"exp":\#(now + 60),"starling":{"subscribe":["*"],"publish":["*"]}}"#) + "." + parts[2]
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: String(forged), action: .publish, channels: ["a"], nowSeconds: now))
        let truncatedSig = String(t.dropLast(2))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: truncatedSig, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testAlgNoneIs401() throws {
        let auth = Fixtures.authorizer(pems: [Fixtures.rsa.publicPEM, Fixtures.ec.publicPEM])
        let payload = base64url(#"{"starling":{"subscribe":["*"],"publish":["*"]}}"#)
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let header = base64url(#"{"alg":"\#(alg)","typ":"JWT"}"#)
            for sig in ["", "AAAA"] {
                XCTAssertAuthError(.unauthorized, try auth.authorize(token: "\(header).\(payload).\(sig)", action: .publish, channels: ["a"], nowSeconds: now), alg)
            }
        }
        // Signed with a real key but claiming alg none, or no alg at all.
        for header in [#"{"alg":"none"}"#, #"{"typ":"JWT"}"#, #"{"alg":null}"#, #"{"alg":["HS256"]}"#] {
            let t = try Fixtures.hs256().sign(payloadJSON: #"{"starling":{"publish":["a"]}}"#, headerJSON: header)
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now), header)
        }
    }

    func testOtherAlgorithmsAndCritAre401() throws {
        let auth = Fixtures.authorizer()
        for header in [#"{"alg":"HS384"}"#, #"{"alg":"HS512"}"#, #"{"alg":"hs256"}"#, #"{"alg":"PS256"}"#, #"{"alg":"EdDSA"}"#,
                       #"{"alg":"HS256","crit":["exp"]}"#] {
            let t = try Fixtures.hs256().sign(payloadJSON: #"{"starling":{"publish":["a"]}}"#, headerJSON: header)
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now), header)
        }
        // The same header fields are fine when the alg is right (kid and typ are not looked at).
        let ok = try Fixtures.hs256().sign(payloadJSON: #"{"starling":{"publish":["a"]}}"#, headerJSON: #"{"typ":"JWT","kid":"k1","alg":"HS256"}"#)
        XCTAssertNoThrow(try auth.authorize(token: ok, action: .publish, channels: ["a"], nowSeconds: now))
    }

    func testAlgorithmConfusionIs401() throws {
        // The classic attack: HS256 with the server's RSA (or EC) public key PEM as the HMAC secret.
        for pem in [Fixtures.rsa.publicPEM, Fixtures.ec.publicPEM] {
            let attacker = Fixtures.hs256(pem)
            let t = try attacker.token(publish: ["*"], subscribe: ["*"], expiresAt: now + 60)
            let pemOnly = Fixtures.authorizer(secrets: [], pems: [pem])
            XCTAssertAuthError(.unauthorized, try pemOnly.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
            let both = Fixtures.authorizer(secrets: [Fixtures.secret], pems: [pem])
            XCTAssertAuthError(.unauthorized, try both.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
            // Without the trimmed trailing newline, too.
            let t2 = try Fixtures.hs256(pem.trimmingCharacters(in: .whitespacesAndNewlines)).token(publish: ["*"])
            XCTAssertAuthError(.unauthorized, try both.authorize(token: t2, action: .publish, channels: ["a"], nowSeconds: now))
        }
        // An RS256 token is not checked against ES256 keys or HMAC secrets, and the reverse.
        let esOnly = Fixtures.authorizer(secrets: [Fixtures.secret], pems: [Fixtures.ec.publicPEM])
        let r = try Fixtures.rs256.token(subscribe: ["a"], expiresAt: now + 60)
        XCTAssertAuthError(.unauthorized, try esOnly.authorize(token: r, action: .subscribe, channels: ["a"], nowSeconds: now))
        let rsaOnly = Fixtures.authorizer(secrets: [], pems: [Fixtures.rsa.publicPEM])
        let e = try Fixtures.es256.token(subscribe: ["a"], expiresAt: now + 60)
        XCTAssertAuthError(.unauthorized, try rsaOnly.authorize(token: e, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testRS256TokenIsGranted() throws {
        let auth = Fixtures.authorizer(secrets: [], pems: [Fixtures.rsa.publicPEM])
        let t = try Fixtures.rs256.token(publish: ["a"], subscribe: ["b.*"], expiresAt: now + 60)
        XCTAssertTrue(t.hasPrefix(base64url(#"{"alg":"RS256","typ":"JWT"}"#)))
        XCTAssertNoThrow(try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["b.1", "b.2"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now))
    }

    func testES256TokenIsGranted() throws {
        let auth = Fixtures.authorizer(secrets: [], pems: [Fixtures.ec.publicPEM])
        let t = try Fixtures.es256.token(publish: ["a"], expiresAt: now + 60)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
        XCTAssertAuthError(.forbidden, try auth.authorize(token: t, action: .publish, channels: ["b"], nowSeconds: now))
    }

    func testES256ZeroSignatureIs401() throws {
        // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
        let auth = Fixtures.authorizer(secrets: [], pems: [Fixtures.ec.publicPEM])
        let input = base64url(#"{"alg":"ES256"}"#) + "." + base64url(#"{"starling":{"publish":["*"]}}"#)
        for sig in [[UInt8](repeating: 0, count: 64), [UInt8](repeating: 0, count: 72), [], [UInt8](repeating: 0xFF, count: 64)] {
            let t = input + "." + Base64URL.encode(sig)
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .publish, channels: ["a"], nowSeconds: now))
        }
    }

    func testMalformedTokensAre401() {
        let auth = Fixtures.authorizer()
        let good = try! Fixtures.hs256().token(subscribe: ["a"])
        for t in ["x", "a.b", "a.b.c.d", "..", "...", good + ".", "." + good, good.replacingOccurrences(of: ".", with: ".="),
                  good + "=", String(repeating: "A", count: 9000) + "." + good, "Bearer " + good, good + " "] {
            XCTAssertAuthError(.unauthorized, try auth.authorize(token: t, action: .subscribe, channels: ["a"], nowSeconds: now), t)
        }
    }

    func testPublicSubscribeOpensChosenChannelsToAnonymousSubscribers() throws {
        let auth = Fixtures.authorizer(publicSubscribe: ["news.*", "status"])
        let g = try auth.authorize(token: nil, action: .subscribe, channels: ["news.sport", "status"], nowSeconds: now)
        XCTAssertEqual(g.kind, .anonymous)
        XCTAssertNil(g.expiresAt)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .subscribe, channels: ["news.sport", "private"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .subscribe, channels: ["statuses"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .publish, channels: ["news.sport"], nowSeconds: now))
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: nil, action: .subscribe, channels: [], nowSeconds: now))
        // A token holder may add public channels to the ones in its claims…
        let t = try Fixtures.hs256().token(subscribe: ["mine"], expiresAt: now + 60)
        XCTAssertNoThrow(try auth.authorize(token: t, action: .subscribe, channels: ["mine", "news.a"], nowSeconds: now))
        // …but a token that is presented must be valid, even for a public channel.
        let expired = try Fixtures.hs256().token(subscribe: ["mine"], expiresAt: now - 60)
        XCTAssertAuthError(.unauthorized, try auth.authorize(token: expired, action: .subscribe, channels: ["news.a"], nowSeconds: now))
    }

    func testStreamingPublishChecksEachEventAgainstTheGrant() throws {
        let auth = Fixtures.authorizer()
        let t = try Fixtures.hs256().token(publish: ["a", "b.*"], expiresAt: now + 60)
        let g = try auth.authenticate(token: t, nowSeconds: now)
        XCTAssertNoThrow(try g.check(.publish, channels: ["a"]))
        XCTAssertNoThrow(try g.check(.publish, channels: ["b.x"]))
        XCTAssertAuthError(.forbidden, try g.check(.publish, channels: ["c"]))
        XCTAssertTrue(g.permits(.publish, channel: "b.y"))
        XCTAssertFalse(g.permits(.subscribe, channel: "a"))
        XCTAssertFalse(g.isExpired(nowSeconds: now + 64))
        XCTAssertTrue(g.isExpired(nowSeconds: now + 65))
        let anon = try auth.authenticate(token: nil, nowSeconds: now)
        XCTAssertAuthError(.unauthorized, try anon.check(.publish, channels: ["a"]))
    }

    func testBadConfigurationIsRefusedWithAClearError() {
        func message(_ config: AuthConfig) -> String {
            do { _ = try Authorizer(config: config); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(AuthConfig(hmacSecrets: ["short"])).contains("at least 32"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: ["hello"])).contains("not PEM"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [Fixtures.rsa.privatePEM])).contains("private key"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [Fixtures.ec.privatePEM])).contains("private key"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [Fixtures.rsaSmall.publicPEM])).contains("2048"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [Fixtures.ec384.publicPEM])).contains("neither"))
        let mangled = Fixtures.rsa.publicPEM.replacingOccurrences(of: "A", with: "B")
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [mangled])).contains("#1"))
        XCTAssertTrue(message(AuthConfig(publicKeyPEMs: [Fixtures.ec.publicPEM, "x"])).contains("#2"))
        XCTAssertTrue(message(AuthConfig(publicSubscribe: ["a*b"])).contains("a*b"))
        XCTAssertTrue(message(AuthConfig(publicSubscribe: ["ok.*", "bad pattern"])).contains("bad pattern"))
        XCTAssertEqual(message(AuthConfig(publicSubscribe: ["news.*"])), "accepted")
    }

    func testKeyFileIsReadOrNamedInTheError() throws {
        let path = NSTemporaryDirectory() + "starling-auth-\(getpid()).pem"
        try Fixtures.ec.publicPEM.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try AuthConfig.readKeyFile(path), Fixtures.ec.publicPEM)
        XCTAssertThrowsError(try AuthConfig.readKeyFile(path + ".missing")) { XCTAssertTrue("\($0)".contains(".missing")) }
    }
}
