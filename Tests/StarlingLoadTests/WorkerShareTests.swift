// How `--procs N` deals a run out to its workers, on its own: every subscriber and every
// channel lands in exactly one worker, a subscriber stays with its channel, and the
// publish rate and connection ramp add up to what was asked. (The split run against a
// real broker is in LoadAgainstBrokerTests.)
import StarlingLoadKit
import XCTest

final class WorkerShareTests: XCTestCase {
    private func config(channels: Int, subscribers: Int, publishers: Int, workers: Int, worker: Int) -> LoadConfig {
        var c = LoadConfig()
        c.scenario = .channels
        c.channels = channels
        c.subscribers = subscribers
        c.publishers = publishers
        c.rate = 1_000
        c.rampPerSecond = 600
        c.part = WorkerPart(index: worker, count: workers)
        return c
    }

    func testEverySubscriberAndChannelLandsInExactlyOneWorkerWithItsChannel() {
        for workers in 1...7 {
            var channelsSeen: [Int] = []
            var subscribersSeen: [Int] = []
            var rate = 0.0, ramp = 0.0
            for k in 0..<workers {
                let c = config(channels: 7, subscribers: 30, publishers: 3, workers: workers, worker: k)
                let share = WorkerShare(c)
                channelsSeen += share.channels
                for s in share.subscribers {
                    subscribersSeen.append(s.index)
                    XCTAssertEqual(share.channels[s.channel], s.index % 7, "subscriber \(s.index) left its channel")
                }
                XCTAssertGreaterThanOrEqual(share.publishers, 1)
                XCTAssertLessThanOrEqual(share.publishers, share.channels.count)
                rate += share.rate ?? 0
                ramp += share.rampPerSecond
            }
            XCTAssertEqual(channelsSeen.sorted(), Array(0..<7), "\(workers) workers")
            XCTAssertEqual(subscribersSeen.sorted(), Array(0..<30), "\(workers) workers")
            XCTAssertEqual(rate, 1_000, accuracy: 1e-9)
            XCTAssertEqual(ramp, 600, accuracy: 1e-9)
        }
    }

    func testPublishersAreDealtOutAndEveryWorkerHasOne() {
        let counts = (0..<3).map { WorkerShare(config(channels: 9, subscribers: 9, publishers: 4, workers: 3, worker: $0)).publishers }
        XCTAssertEqual(counts, [2, 1, 1])
        let few = (0..<3).map { WorkerShare(config(channels: 9, subscribers: 9, publishers: 1, workers: 3, worker: $0)).publishers }
        XCTAssertEqual(few, [1, 1, 1])
    }

    func testWorkerFlagParses() {
        XCTAssertEqual(WorkerPart("2/5"), WorkerPart(index: 2, count: 5))
        XCTAssertNil(WorkerPart("5/5"))
        XCTAssertNil(WorkerPart("x/2"))
        XCTAssertEqual(WorkerPart(index: 1, count: 3).text, "1/3")
    }
}
