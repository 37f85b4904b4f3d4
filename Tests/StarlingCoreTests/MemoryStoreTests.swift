import StarlingCore
import StarlingStore
import XCTest

final class MemoryStoreTests: XCTestCase {
    func read(_ s: MemoryStore, _ ch: String, _ from: ResumePoint, limit: Int = 100) -> ReadResult {
        var out: ReadResult?
        s.read(ch, from: from, limit: limit) { out = try? $0.get() }
        return out!
    }

    func testRetentionByCountRecordsTheGapExactly() {
        var now: UInt64 = 1_000
        let s = MemoryStore(retainEvents: 3, retainSeconds: 60, clock: { now })
        var ids: [EventID] = []
        for k in 0..<5 {
            now += 1
            s.append([EventDraft(data: .text("\(k)"))], to: "c") { ids.append((try! $0.get()).last!) }
        }
        XCTAssertNil(read(s, "c", .after(ids[1])).gap, "resuming at the last trimmed ID loses nothing")
        let r = read(s, "c", .after(ids[0]))
        XCTAssertEqual(r.gap, Gap(requested: ids[0], resumedFrom: ids[2]))
        XCTAssertEqual(r.events.map(\.id), Array(ids[2...]))
    }

    func testProducerSeqRepeatsAreAcknowledgedNotStored() {
        let s = MemoryStore(retainEvents: 10, retainSeconds: 60)
        var result: AppendResult?
        let d = { (seq: Int64) in EventDraft(data: .text("t\(seq)"), producer: "w1", seq: seq) }
        s.append([d(1), d(2)], to: "c") { result = try? $0.get() }
        s.append([d(2), d(3)], to: "c") { result = try? $0.get() }
        XCTAssertEqual(result?.count, 1)
        XCTAssertEqual(result?.duplicates, 1)
        XCTAssertEqual(read(s, "c", .earliest).events.map(\.data), [.text("t1"), .text("t2"), .text("t3")])
    }

    func testPagesReportWhetherTheyReachTheEnd() {
        let s = MemoryStore(retainEvents: 100, retainSeconds: 60)
        s.append((0..<10).map { EventDraft(data: .text("\($0)")) }, to: "c") { _ in }
        let first = read(s, "c", .earliest, limit: 4)
        XCTAssertEqual(first.events.count, 4)
        XCTAssertFalse(first.reachedEnd)
        let last = read(s, "c", .after(read(s, "c", .earliest, limit: 8).events.last!.id), limit: 4)
        XCTAssertEqual(last.events.count, 2)
        XCTAssertTrue(last.reachedEnd)
    }
}
