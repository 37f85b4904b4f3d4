// The browser module /starling.js, run for real in Node (fetch, ReadableStream and
// TextDecoder as in a browser) against the real broker; and the demo page served.
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
        let source = try String(contentsOf: repoRoot.appendingPathComponent("Sources/StarlingServer/Assets/starling.js"), encoding: .utf8)
        XCTAssertEqual(js.text, source, "run ops/scripts/embed-assets.sh after editing Assets/")
        let demo = try b.client.request("GET", "/demo")
        XCTAssertEqual(demo.status, 200)
        XCTAssertTrue(demo.text.contains("import { subscribe, publish } from \"/starling.js\""))
    }

    func testModuleStreamsResumesEndsAndDecodesSplitCharacters() throws {
        try onEachEngine { b, engine in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("starling-js-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let module = dir.appendingPathComponent("starling.mjs")
            try b.client.request("GET", "/starling.js").body.withUnsafeBytes { try Data($0).write(to: module) }
            let node = Process()
            node.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            node.arguments = ["node", repoRoot.appendingPathComponent("Tests/StarlingServerTests/js/module-test.mjs").path,
                              module.path, "http://127.0.0.1:\(b.port)", uniqueChannel()]
            let out = Pipe()
            node.standardOutput = out
            try node.run()
            node.waitUntilExit()
            XCTAssertEqual(node.terminationStatus, 0, "[\(engine)] node must be installed and the script must pass")
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let r = try JSONParser.parse(Array(text.utf8))
            XCTAssertEqual(r["live"], .array([
                .array([.string("token"), .string("مرحبا ")]),
                .array([.string("token"), .string("🚀\nline2")]),
                .array([.string("message"), .string("{\"pct\":40}")]),
            ]), "[\(engine)] \(text)")
            XCTAssertEqual(r["resumed"], .array([.string("🚀\nline2"), .string("{\"pct\":40}")]))
            XCTAssertEqual(r["ended"], .bool(true))
            XCTAssertEqual(r["split"], .array([.array([.string("1-0"), .string("token"), .string("é🚀ش")])]))
        }
    }
}
