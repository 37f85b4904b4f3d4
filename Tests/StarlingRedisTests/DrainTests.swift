// SIGTERM while publishers pipeline (SPEC §7): every stored publish is answered, and a
// request read but not handled is neither stored nor answered, so a retry is safe.
// Counted exactly on the Redis engine, whose streams outlive the broker process.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class DrainTests: XCTestCase {
    func testSIGTERMWhilePipeliningAnswersEveryStoredPublish() throws {
        let redis = try BrokerProcess.redisURL()
        for threads in [1, 4] {
            let broker = try BrokerProcess(["--redis", redis, "--threads", "\(threads)", "--retain-events", "1000000"])
            let channels = (0..<8).map { _ in uniqueChannel("drain") }
            let connections = try channels.map { _ in try BlockingConnection(port: broker.port) }
            final class Answered: @unchecked Sendable { let lock = NSLock(); var counts: [Int] = Array(repeating: 0, count: 8) }
            let answered = Answered()
            let group = DispatchGroup()
            for (k, (channel, c)) in zip(channels, connections).enumerated() {
                let work = Handoff(c)
                group.enter()
                Thread {
                    defer { group.leave() }
                    let ok = DrainTests.publishUntilClosed(work.value, channel: channel)
                    answered.lock.lock(); answered.counts[k] = ok; answered.lock.unlock()
                }.start()
            }
            Thread.sleep(forTimeInterval: 0.5)
            kill(broker.process.processIdentifier, SIGTERM)
            XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "every connection reached its end")
            broker.process.waitUntilExit()
            XCTAssertEqual(broker.process.terminationStatus, 0)
            for (k, channel) in channels.enumerated() {
                let stored = Int(try sharedRedisCLI("XLEN", "starling:{\(channel)}").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
                XCTAssertGreaterThan(answered.counts[k], 0, "[--threads \(threads)] connection \(k) published before the drain")
                XCTAssertEqual(stored, answered.counts[k], "[--threads \(threads)] channel \(k): stored == answered 200")
            }
        }
    }

    /// Keeps 32 publishes in flight on `c` until the broker closes it; returns how many
    /// were answered 200. Every answer must be a 200 or the connection's end.
    static func publishUntilClosed(_ c: BlockingConnection, channel: String) -> Int {
        var ok = 0
        var n = 0
        let window = 32
        func request() -> [UInt8] {
            n += 1
            return StarlingHTTPClient.format("POST", "/v1/channels/\(channel)/events",
                                             headers: [("Content-Type", "application/json")], body: Array("{\"data\":\(n)}".utf8))
        }
        var inFlight = 0
        var sending = true
        while true {
            if sending {
                var batch: [UInt8] = []
                while inFlight < window { batch += request(); inFlight += 1 }
                if (try? c.send(batch)) == nil { sending = false }
            }
            guard let answer = try? HTTPResponse.read(from: c, timeout: 10) else { return ok }
            inFlight -= 1
            guard answer.status == 200 else { return ok }
            ok += 1
            if answer.header("connection") == "close" { return ok }
        }
    }
}
