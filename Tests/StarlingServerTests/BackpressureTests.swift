// Per-client bounded queues (SPEC §5): a subscriber that stops reading is disconnected
// once its queue passes --client-buffer while a healthy one on the same channel gets
// everything; conflatable snapshots collapse first; the slow one resumes from history.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class BackpressureTests: XCTestCase {
    func testStalledSubscriberIsCutOffWhileHealthyOneGetsEverythingAndResumeFillsTheRest() throws {
        // 2 MiB of queue: the healthy reader (a debug-built test thread) may fall that far
        // behind on a loaded machine without being cut; the slow one, which reads none of
        // the 12 MB, is cut all the same (a 512 KiB buffer once cut the healthy one while a
        // compiler shared the machine).
        try onEachEngine(["--client-buffer", "2097152", "--retain-events", "100000"]) { broker, engine in
            let ch = uniqueChannel()
            let slow = try broker.client.subscribe(ch, receiveBuffer: 4096)  // never reads until the end
            let healthy = try broker.client.subscribe(ch)
            let pad = String(repeating: "p", count: 4000)
            let total = 3000
            final class Box: @unchecked Sendable { var got: [SSEMessage] = [] }
            let box = Box()
            let done = DispatchSemaphore(value: 0)
            let reader = Handoff(healthy)
            let readerThread = Thread {
                box.got = (try? reader.value.next(total, timeout: 10)) ?? []
                done.signal()
            }
            readerThread.start()
            try broker.publishNumbered(ch, count: total, prefix: pad, batch: 50)
            _ = done.wait(timeout: .now() + 30)
            let healthyGot = box.got
            XCTAssertEqual(healthyGot.count, total, "[\(engine)] the healthy subscriber gets every event")
            XCTAssertTrue(healthyGot.map { Int($0.data.split(separator: "-").last!)! } == Array(1...total), "in order, once each")
            XCTAssertGreaterThanOrEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 1)

            // The slow one now reads what reached it before the cut, then resumes.
            let before = try slow.readToEnd(timeout: 3)
            XCTAssertTrue(slow.connection.peerClosed)
            XCTAssertLessThan(before.count, total)
            let lastSeen = before.last?.id
            let resumed = try broker.client.subscribe(ch, lastEventID: lastSeen ?? "earliest")
            let rest = try resumed.next(total - before.count, timeout: 10)
            let all = (before + rest).map { Int($0.data.split(separator: "-").last!)! }
            XCTAssertTrue(all == Array(1...total), "nothing lost, nothing twice, in order (got \(all.count))")
        }
    }

    func testConflatableSnapshotsCollapseBeforeAnyDisconnect() throws {
        try onEachEngine(["--client-buffer", "65536"]) { broker, engine in
            let ch = uniqueChannel()
            let slow = try broker.client.subscribe(ch, receiveBuffer: 4096)
            let pad = String(repeating: "q", count: 4000)
            let total = 2000
            for start in stride(from: 1, through: total, by: 100) {
                let body = "[" + (start..<(start + 100)).map {
                    "{\"event\":\"progress\",\"conflate\":\"task-1\",\"data\":\"\(pad)-\($0)\"}"
                }.joined(separator: ",") + "]"
                XCTAssertEqual(try broker.client.publish(ch, json: body).status, 200)
            }
            XCTAssertGreaterThan(try broker.metric("starling_conflated_drops_total"), 0, "[\(engine)]")
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 0)
            var got: [SSEMessage] = []
            while let m = try slow.next(timeout: 1) {
                got.append(m)
                if m.data.hasSuffix("-\(total)") { break }
            }
            XCTAssertLessThan(got.count, total, "superseded snapshots were dropped")
            XCTAssertEqual(got.last?.data, "\(pad)-\(total)", "the newest snapshot always arrives")
            let order = got.map { Int($0.data.split(separator: "-").last!)! }
            XCTAssertEqual(order, order.sorted(), "never reordered")
            // Still connected: a later event arrives too.
            try broker.client.publish(ch, data: "after")
            XCTAssertEqual(try slow.next()?.data, "after")
        }
    }

    func testGlobalQueueCapShedsTheLargestQueuesFirst() throws {
        // Each client may queue 64 MiB, but all together only 1 MiB: stalled clients are
        // shed by the global cap long before their own bound, largest queue first.
        try onEachEngine(["--client-buffer", "67108864", "--max-queued-bytes", "1048576", "--retain-events", "100000"]) { broker, engine in
            let ch = uniqueChannel()
            let stalled = try (0..<3).map { _ in try broker.client.subscribe(ch, receiveBuffer: 4096) }
            let healthy = try broker.client.subscribe(ch)
            let pad = String(repeating: "g", count: 4000)
            final class Box: @unchecked Sendable { var got: [SSEMessage] = [] }
            let box = Box()
            let done = DispatchSemaphore(value: 0)
            let reader = Handoff(healthy)
            Thread { box.got = (try? reader.value.next(2000, timeout: 10)) ?? []; done.signal() }.start()
            try broker.publishNumbered(ch, count: 2000, prefix: pad, batch: 50)
            _ = done.wait(timeout: .now() + 30)
            XCTAssertEqual(box.got.count, 2000, "[\(engine)] the healthy subscriber is not shed")
            // The cap is checked twice a second.
            var shed = 0
            let deadline = Date().addingTimeInterval(3)
            while shed == 0, Date() < deadline {
                shed = try broker.metric("starling_shed_global_cap_total")
                Thread.sleep(forTimeInterval: 0.1)
            }
            XCTAssertGreaterThanOrEqual(shed, 1)
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 0, "the per-client bound was never reached")
            XCTAssertLessThanOrEqual(try broker.metric("starling_queued_bytes"), 8_000_000)
            _ = stalled
        }
    }
}
