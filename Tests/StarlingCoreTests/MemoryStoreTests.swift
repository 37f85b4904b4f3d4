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

    /// The listener the delegate set for a channel comes back with each of its appends: set
    /// before the channel exists, replaced, dropped, and kept across the channel being
    /// forgotten and made again.
    func testAppendsHandBackTheChannelsCurrentListener() {
        final class Recorder: EventStoreDelegate {
            var heard: [(String, AnyObject?)] = []
            func store(didAppend events: [StoredEvent], to channel: String, listener: AnyObject?) {
                heard.append((channel, listener))
            }
        }
        final class Mark {}
        var now: UInt64 = 1_000
        let s = MemoryStore(retainEvents: 10, retainSeconds: 1, clock: { now })
        let recorder = Recorder()
        s.delegate = recorder
        let a = Mark(), b = Mark()
        func publish(_ ch: String) { s.append([EventDraft(data: .text("x"))], to: ch) { _ in } }
        s.setListener(a, for: "c")
        publish("c"); publish("d")
        s.setListener(b, for: "c")
        publish("c")
        s.setListener(nil, for: "c")
        publish("c")
        s.setListener(b, for: "c")
        now += 5_000  // "c" falls due unwatched: forgotten at the next access, then made again
        publish("c")
        XCTAssertEqual(recorder.heard.map(\.0), ["c", "d", "c", "c", "c"])
        XCTAssertEqual(recorder.heard.map { $0.1.map(ObjectIdentifier.init) },
                       [ObjectIdentifier(a), nil, ObjectIdentifier(b), nil, ObjectIdentifier(b)])
        XCTAssertEqual(read(s, "c", .earliest).events.count, 1, "the last publish made the channel anew")
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
