// The browser module /starling.js and the demo page, as the broker serves them. The
// module's behaviour (streams, resume, token refresh, end, backoff, UTF-8 split across
// chunks) is tested in Node against the real broker: clients/js/test (node --test, run by
// ops/scripts/test-clients.sh).
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class BrowserModuleTests: XCTestCase {
    var repoRoot: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func testServedAssetsMatchTheSourceFiles() throws {
        let b = try BrokerProcess()
        defer { b.terminate() }
        let js = try b.client.request("GET", "/starling.js")
        XCTAssertEqual(js.header("content-type"), "text/javascript; charset=utf-8")
        let source = try String(contentsOf: repoRoot.appendingPathComponent("clients/js/starling.js"), encoding: .utf8)
        XCTAssertEqual(js.text, source, "run ops/scripts/embed-assets.sh after editing clients/js/starling.js")
        let demo = try b.client.request("GET", "/demo")
        XCTAssertEqual(demo.status, 200)
        XCTAssertTrue(demo.text.contains("import { subscribe, publish } from \"/starling.js\""))
    }
}
