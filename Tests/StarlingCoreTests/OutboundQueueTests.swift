import StarlingCore
import XCTest

final class OutboundQueueTests: XCTestCase {
    func bytes(_ n: Int) -> SharedBytes { SharedBytes([UInt8](repeating: 0x61, count: n)) }

    func testOverflowConflatesSupersededSnapshotsFirst() {
        var q = OutboundQueue(capacity: 350)
        XCTAssertEqual(q.push(.init(bytes(100), conflate: "p")), .queued)
        XCTAssertEqual(q.push(.init(bytes(100), conflate: nil)), .queued)
        XCTAssertEqual(q.push(.init(bytes(100), conflate: "p")), .queued)
        XCTAssertEqual(q.push(.init(bytes(100), conflate: nil)), .relieved(merged: 0, dropped: 1), "the older snapshot goes")
        XCTAssertEqual(q.totalBytes, 300)
        XCTAssertEqual(q.push(.init(bytes(100), conflate: nil)), .overflow, "tokens are never dropped: the client is cut instead")
    }

    func testPartialWritesAndInFlightAccounting() {
        var q = OutboundQueue(capacity: 1000)
        _ = q.push(.init(bytes(10)))
        _ = q.push(.init(bytes(20)))
        q.consume(15)
        XCTAssertEqual(q.pendingCount, 1)
        XCTAssertEqual(q.headOffset, 5)
        var seen: [Int] = []
        q.forEachPending(maxItems: 8) { _, n in seen.append(n) }
        XCTAssertEqual(seen, [15])
        let d = q.detach(1)
        XCTAssertEqual(d.bytes, 15)
        XCTAssertEqual(q.inFlightBytes, 15)
        q.completeInFlight(15)
        XCTAssertTrue(q.isIdle)
    }

    func testSharedBytesAreNotCopiedPerQueue() {
        let shared = bytes(64)
        var a = OutboundQueue(capacity: 1000)
        var b = OutboundQueue(capacity: 1000)
        _ = a.push(.init(shared))
        _ = b.push(.init(shared))
        var pa: UnsafeRawPointer?
        var pb: UnsafeRawPointer?
        a.forEachPending(maxItems: 1) { p, _ in pa = p }
        b.forEachPending(maxItems: 1) { p, _ in pb = p }
        XCTAssertEqual(pa, pb, "both queues write from the one encoding")
    }
}

final class TimerWheelTests: XCTestCase {
    final class Owner: WheelTimed { var wheelToken: UInt32 = 0; let name: String; init(_ n: String) { name = n } }

    func testExpiresOnceAtItsDeadlineAndSkipsCancelled() {
        var w = TimerWheel<Owner>(tickMs: 100, slotCount: 8, nowMs: 0)
        let a = Owner("a"), b = Owner("b"), c = Owner("c")
        w.schedule(a, atMs: 250)
        w.schedule(b, atMs: 2_000)  // beyond one turn of the wheel
        w.schedule(c, atMs: 300)
        w.cancel(c)
        XCTAssertEqual(w.advance(toMs: 200).map(\.name), [])
        XCTAssertEqual(w.advance(toMs: 300).map(\.name), ["a"])
        XCTAssertEqual(w.advance(toMs: 1_900).map(\.name), [])
        XCTAssertEqual(w.advance(toMs: 2_000).map(\.name), ["b"])
        XCTAssertEqual(w.advance(toMs: 9_000).map(\.name), [])
    }

    func testRescheduleReplacesTheEarlierDeadline() {
        var w = TimerWheel<Owner>(tickMs: 100, slotCount: 16, nowMs: 0)
        let a = Owner("a")
        w.schedule(a, atMs: 200)
        w.schedule(a, atMs: 900)
        XCTAssertEqual(w.advance(toMs: 500).count, 0)
        XCTAssertEqual(w.advance(toMs: 900).count, 1)
    }
}
