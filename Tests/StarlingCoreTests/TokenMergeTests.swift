// TokenMerge in a queue, without sockets: which runs merge, what the merged bytes say,
// and that a client reading them ends with the same text (the socket tests are in
// StarlingServerTests/TokenMergeTests.swift).
import DequeModule
import StarlingCore
import XCTest

final class TokenMergeTests: XCTestCase {
    var seq: UInt64 = 0
    func event(_ data: EventData, name: String = "token", channel: String = "c", conflate: String? = nil,
               final: Bool = false) -> StoredEvent {
        seq += 1
        return StoredEvent(channel: channel, id: EventID(ms: 1_700_000_000_000, seq: seq), name: name, data: data,
                           conflate: conflate, final: final, storedAtMs: 0)
    }

    /// Pushes `events` as a single-channel stream would, tagging the mergeable ones.
    func queue(_ events: [StoredEvent], capacity: Int = 1 << 20) -> OutboundQueue {
        var q = OutboundQueue(capacity: capacity)
        for e in events {
            let token = TokenMerge.isMergeable(e, names: ["token"])
            q.pushUnbounded(.init(e.sse, conflate: e.conflate, token: token ? .event(e) : nil))
        }
        return q
    }

    func read(_ q: OutboundQueue) -> [SSEMessage] {
        var bytes: [UInt8] = []
        q.forEachPending(maxItems: .max) { p, n in bytes += Array(UnsafeRawBufferPointer(start: p, count: n)) }
        var parser = SSEParser()
        return parser.feed(bytes)
    }

    func testRunsMergeIntoOneEventWithTheLastIDAndNothingElseMerges() {
        let events = [event(.text("He")), event(.text("llo")), event(.text(" wo")),
                      event(.text("snap"), conflate: "k"),  // a conflate key: never merged
                      event(.text("rld")), event(.json("5")),  // JSON, not a string
                      event(.text("!"), name: "other"), event(.text("a")), event(.text("b"), channel: "d"),
                      event(.text("end"), final: true)]
        var q = queue(events)
        let before = read(q)
        XCTAssertEqual(q.mergeTokens(), 2)
        let after = read(q)
        XCTAssertEqual(after.map(\.data), ["Hello wo", "snap", "rld", "5", "!", "a", "b", "end"])
        XCTAssertEqual(after[0].id, events[2].id.description, "the ID of the last merged event")
        XCTAssertEqual(before.map(\.data).joined(), after.map(\.data).joined())
        XCTAssertEqual(after.last?.id, events.last?.id.description)
        XCTAssertEqual(q.mergeTokens(), 0, "merging twice changes nothing")
    }

    func testLineBreaksSplitAcrossTokensReadTheSameMerged() {
        let pieces = ["a\r", "\nb", "c\r\n", "d\r", "\r", "e\n"]
        var q = queue(pieces.map { event(.text($0)) })
        let before = read(q).map(\.data).joined()
        XCTAssertEqual(q.mergeTokens(), pieces.count - 1)
        let after = read(q)
        XCTAssertEqual(after.count, 1)
        XCTAssertEqual(after[0].data, before, "byte-identical text at the client")
        XCTAssertEqual(before, "a\n\nbc\nd\n\ne\n")
    }

    func testMultiplexedPairsMergeUnderTheLastCursor() {
        var q = OutboundQueue(capacity: 1 << 20)
        let events = [event(.text("x\r")), event(.text("\ny")), event(.text("z"), channel: "d")]
        for (k, e) in events.enumerated() {
            q.pushUnbounded(.init(SharedBytes("id: cursor-\(k)\n"), token: .cursor))
            q.pushUnbounded(.init(e.envelope, token: .envelope(e)))
        }
        XCTAssertEqual(q.mergeTokens(), 1, "the third is another channel")
        let got = read(q)
        XCTAssertEqual(got.map(\.id), ["cursor-1", "cursor-2"])
        XCTAssertEqual(got[0].data, "{\"channel\":\"c\",\"data\":\"x\\r\\ny\"}", "raw text, JSON-quoted")
    }

    func testOverCapacityMergesBeforeConflatingOrOverflowing() {
        let tokens = (0..<100).map { event(.text("t\($0) ")) }
        let size = tokens.reduce(0) { $0 + $1.sse.count }
        var q = queue(Array(tokens.dropLast()), capacity: size - 10)
        let last = tokens.last!
        let r = q.push(.init(last.sse, token: .event(last)))
        XCTAssertEqual(r, .relieved(merged: 99, dropped: 0))
        XCTAssertLessThan(q.totalBytes, size / 5)
        XCTAssertEqual(read(q).map(\.data), [tokens.map { $0.data.wireText }.joined()])
        // Without token marks the same bytes overflow.
        var plain = OutboundQueue(capacity: size - 10)
        for t in tokens.dropLast() { plain.pushUnbounded(.init(t.sse)) }
        XCTAssertEqual(plain.push(.init(last.sse)), .overflow)
    }

    func testAPartlyWrittenHeadAndTheSizeBoundSplitRuns() {
        var q = queue((0..<10).map { _ in event(.text("0123456789")) }, capacity: 160)  // merged text at most 40 bytes
        q.consume(3)  // the head is on the wire
        XCTAssertEqual(q.mergeTokens(), 6)
        let lengths = read(q).map(\.data.count)
        XCTAssertEqual(lengths, [10, 40, 40, 10], "the head as it was, then runs of 4, 4 and 1")
    }
}
