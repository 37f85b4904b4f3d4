// Several broker processes on one Redis: an event published on any node reaches
// subscribers on every node, once each, in channel order.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class MultiNodeTests: XCTestCase {
    /// Two broker processes on the suite's Redis.
    func twoNodes() throws -> (BrokerProcess, BrokerProcess) {
        let url = try BrokerProcess.redisURL()
        return (try BrokerProcess(["--redis", url]), try BrokerProcess(["--redis", url]))
    }

    func testTwoBrokersOnOneRedisDeliverEveryEventOnceInOrder() throws {
        let (a, b) = try twoNodes()
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("nodes")
        let onA = try a.client.subscribe(ch)
        let onB = try b.client.subscribe(ch)
        XCTAssertEqual(onA.head.status, 200)
        XCTAssertEqual(onB.head.status, 200)
        // Single events and batches of several sizes, all through A.
        try a.publish(ch, 1...100, batch: 1)
        try a.publish(ch, 101...300, batch: 7)
        XCTAssertEqual(try readInOrder(onA, count: 300), numbered(1...300))
        XCTAssertEqual(try readInOrder(onB, count: 300), numbered(1...300))
        XCTAssertNil(try onA.next(timeout: 0.7), "nothing twice on A")
        XCTAssertNil(try onB.next(timeout: 0.1), "nothing twice on B")
    }

    func testSubscriberOnOtherNodeResumesAcrossNodes() throws {
        let (a, b) = try twoNodes()
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("nodes")
        let ids = try a.publish(ch, 1...20, batch: 5)
        // A client that read up to e-8 on A reconnects to B with its Last-Event-ID.
        let s = try b.client.subscribe(ch, lastEventID: ids[7])
        XCTAssertEqual(try readInOrder(s, count: 12), numbered(9...20))
        try a.publish(ch, 21...25)
        XCTAssertEqual(try readInOrder(s, count: 5), numbered(21...25))
        XCTAssertNil(try s.next(timeout: 0.5))
    }

    func testConcurrentPublishersOnBothNodesKeepOneOrderEverywhere() throws {
        let (a, b) = try twoNodes()
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("nodes")
        let onA = try a.client.subscribe(ch)
        let onB = try b.client.subscribe(ch)
        let group = DispatchGroup()
        final class Failures: @unchecked Sendable { let lock = NSLock(); var list: [String] = [] }
        let failures = Failures()
        for (node, prefix) in [(a, "a"), (b, "b")] {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                do { try node.publish(ch, 1...150, prefix: prefix, batch: 3) } catch {
                    failures.lock.lock(); failures.list.append("\(error)"); failures.lock.unlock()
                }
            }
        }
        group.wait()
        XCTAssertEqual(failures.list, [])
        let seenA = try readInOrder(onA, count: 300)
        let seenB = try readInOrder(onB, count: 300)
        XCTAssertEqual(seenA.count, 300)
        XCTAssertEqual(seenA, seenB, "both nodes deliver the channel's one order")
        XCTAssertEqual(seenA.filter { $0.hasPrefix("a-") }, numbered(1...150, prefix: "a"))
        XCTAssertEqual(seenA.filter { $0.hasPrefix("b-") }, numbered(1...150, prefix: "b"))
    }
}
