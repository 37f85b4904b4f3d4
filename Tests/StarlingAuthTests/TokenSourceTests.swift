// Where the token comes from: Authorization: Bearer, then ?access_token=, then the cookie.
import XCTest
@testable import StarlingAuth

final class TokenSourceTests: XCTestCase {
    private func token(_ auth: String?, _ query: String?, _ cookie: String?) -> String? {
        Authorizer.token(authorization: auth, queryAccessToken: query, cookieHeader: cookie, cookieName: "starling_token")
    }

    func testBearerWinsThenQueryThenCookie() {
        XCTAssertEqual(token("Bearer h", "q", "starling_token=c"), "h")
        XCTAssertEqual(token(nil, "q", "starling_token=c"), "q")
        XCTAssertEqual(token(nil, nil, "starling_token=c"), "c")
        XCTAssertNil(token(nil, nil, nil))
    }

    func testNonBearerAuthorizationFallsThrough() {
        XCTAssertEqual(token("Basic dXNlcjpwYXNz", "q", nil), "q")
        XCTAssertEqual(token("Bearer", "q", nil), "q")
        XCTAssertEqual(token("Bearer    ", nil, "starling_token=c"), "c")
        XCTAssertEqual(token("", "", "starling_token=c"), "c")
    }

    func testBearerSchemeIsCaseInsensitiveAndTrimmed() {
        XCTAssertEqual(token("bearer abc", nil, nil), "abc")
        XCTAssertEqual(token("BEARER  abc  ", nil, nil), "abc")
        XCTAssertEqual(token(" Bearer abc", nil, nil), "abc")
        XCTAssertNil(token("Bearerabc", nil, nil))
        XCTAssertEqual(token(" \tbEaReR \t abc.def-ghi_jkl \t", nil, nil), "abc.def-ghi_jkl")
        XCTAssertNil(token("Bearer\tabc", nil, nil))   // the scheme ends with a space
        XCTAssertNil(token("Bearar abc", nil, nil))
        XCTAssertNil(token("Bear", nil, nil))
    }

    func testBearerKeepsANonASCIITokenWhole() {
        // Not a JWT (it fails verification later), but taken exactly as sent.
        XCTAssertEqual(token("Bearer tök€n ", nil, nil), "tök€n")
        XCTAssertEqual(token("Bearer a é b", nil, nil), "a é b")
    }

    func testLaterSourcesAreNotReadWhenTheHeaderGivesTheToken() {
        var reads = 0
        func query() -> String? { reads += 1; return "q" }
        XCTAssertEqual(Authorizer.token(authorization: "Bearer h", queryAccessToken: query(), cookieHeader: query(),
                                        cookieName: "starling_token"), "h")
        XCTAssertEqual(reads, 0)
        XCTAssertEqual(Authorizer.token(authorization: "Basic x", queryAccessToken: query(), cookieHeader: query(),
                                        cookieName: "starling_token"), "q")
        XCTAssertEqual(reads, 1)
    }

    func testCookieIsFoundAmongOthers() {
        XCTAssertEqual(token(nil, nil, "a=1; starling_token=tok; b=2"), "tok")
        XCTAssertEqual(token(nil, nil, "a=1;starling_token=\"tok\""), "tok")
        XCTAssertEqual(token(nil, nil, "xstarling_token=no; starling_token=yes"), "yes")
        XCTAssertEqual(token(nil, nil, "starling_token=a=b"), "a=b")
        XCTAssertNil(token(nil, nil, "starling_tokens=no; other=1"))
        XCTAssertNil(token(nil, nil, "starling_token="))
        XCTAssertEqual(Authorizer.token(authorization: nil, queryAccessToken: nil, cookieHeader: "jwt=x", cookieName: "jwt"), "x")
    }
}
