// The load tool against the real broker binary over real sockets: its payload survives
// the broker's codec, its accounting sees a hole in a real stream, a run with a skipped
// seq reports the loss (and the CLI exits non-zero), and every scenario runs clean for
// a couple of seconds. Correctness only: no timed assertions.
import Foundation
import StarlingClient
import StarlingCore
import StarlingLoadKit
import XCTest

final class LoadAgainstBrokerTests: XCTestCase {
    var broker: BrokerProcess!

    override func setUpWithError() throws {
        broker = try BrokerProcess(["--retain-events", "100000", "--heartbeat", "1"])
    }

    override func tearDown() {
        broker?.terminate()
        broker = nil
    }

    private func config(_ scenario: Scenario, subscribers: Int, channels: Int = 1) -> LoadConfig {
        var c = LoadConfig()
        c.scenario = scenario
        c.port = broker.port
        c.subscribers = subscribers
        c.channels = channels
        c.duration = 1.5
        c.drainSeconds = 5
        c.progress = false
        c.serverPID = broker.process.processIdentifier
        return c
    }

    func testPayloadSurvivesTheBrokerAndAHoleInARealStreamIsLoss() throws {
        let ch = uniqueChannel("load")
        // Publish seqs 0, 1, 3 (2 is skipped) and 3 again: one loss, one duplicate.
        for seq in [0, 1, 3, 3] as [UInt64] {
            let r = try broker.client.publish(ch, json: "{\"data\":\(Payload.make(seq: seq, sentNs: 1, size: 80))}")
            XCTAssertEqual(r.status, 200)
        }
        let stream = try broker.client.subscribe(ch, lastEventID: "earliest")
        let messages = try stream.next(4)
        XCTAssertEqual(messages.count, 4)
        var account = StreamAccount()
        for m in messages {
            let p = try XCTUnwrap(Payload.read(m.data), "payload did not survive: \(m.data)")
            account.see(p.seq)
        }
        XCTAssertEqual(account.lost(published: 4), 1)
        XCTAssertEqual(account.duplicates, 1)
    }

    func testRunWithASkippedSeqReportsOneLossPerSubscriber() {
        var c = config(.broadcast, subscribers: 5)
        c.rate = 200
        c.dropSeq = 10
        c.drainSeconds = 1
        let report = LoadRun(c).execute()
        XCTAssertEqual(report.connected, 5)
        XCTAssertEqual(report.loss, 5)
        XCTAssertEqual(report.duplicates, 0)
        XCTAssertFalse(report.isCorrect)
    }

    func testCLIExitsNonZeroOnLoss() throws {
        let tool = URL(fileURLWithPath: BrokerProcess.binaryPath).deletingLastPathComponent().appendingPathComponent("starling-load")
        let p = Process()
        p.executableURL = tool
        p.arguments = ["broadcast", "--target", "127.0.0.1:\(broker.port)", "--subscribers", "3", "--rate", "100",
                       "--duration", "1", "--drain", "1", "--drop-seq", "5", "--json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 1)
        let json = try JSONParser.parse(Array(data))
        XCTAssertEqual(json["loss"], .number("3"))
    }

    func testBroadcastSmoke() { assertClean(LoadRun(config(.broadcast, subscribers: 50)).execute(), subscribers: 50) }

    func testChannelsSmoke() {
        var c = config(.channels, subscribers: 200, channels: 100)
        c.publishers = 2
        c.rate = 2_000
        assertClean(LoadRun(c).execute(), subscribers: 200)
    }

    func testIdleSmoke() {
        let report = LoadRun(config(.idle, subscribers: 300)).execute()
        assertClean(report, subscribers: 300, expectEvents: false)
        XCTAssertGreaterThan(report.heartbeats, 0)
    }

    func testReplaySmoke() {
        var c = config(.replay, subscribers: 5)
        c.replayEvents = 2_000
        let report = LoadRun(c).execute()
        assertClean(report, subscribers: 5)
        XCTAssertEqual(report.delivered, 10_000)
    }

    func testSlowSmoke() {
        var c = config(.slow, subscribers: 30)
        c.slowSubscribers = 5
        c.rate = 500
        c.payloadSize = 1_000
        let report = LoadRun(c).execute()
        assertClean(report, subscribers: 30)
        XCTAssertEqual(report.slowSubscribers, 5)
    }

    private func assertClean(_ r: LoadReport, subscribers: Int, expectEvents: Bool = true,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.connected, subscribers, "errors: \(r.errors)", file: file, line: line)
        XCTAssertEqual(r.connectErrors, 0, file: file, line: line)
        XCTAssertEqual(r.loss, 0, file: file, line: line)
        XCTAssertEqual(r.duplicates, 0, file: file, line: line)
        XCTAssertEqual(r.reordered, 0, file: file, line: line)
        XCTAssertEqual(r.publishErrors, 0, file: file, line: line)
        if expectEvents { XCTAssertGreaterThan(r.delivered, 0, file: file, line: line) }
        XCTAssertNotNil(r.server, file: file, line: line)
    }
}
