// The load tool against the real broker binary over real sockets: its payload survives
// the broker's codec, its accounting sees a hole in a real stream, a run with a skipped
// seq reports the loss (and the CLI exits non-zero), a run that measures nothing fails,
// `--procs` splits a run over processes and adds their reports up exactly, and every
// scenario runs clean for a couple of seconds. Correctness only: no timed assertions.
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
        let (status, report) = try runTool(["broadcast", "--subscribers", "3", "--rate", "100",
                                            "--duration", "1", "--drain", "1", "--drop-seq", "5"])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(report.loss, 3)
    }

    // MARK: a run that measures nothing fails

    func testCLIFailsWhenTheBrokerRefusesTheChannelName() throws {
        // '~' is not a channel-name character: every subscribe and every publish gets 400.
        let (status, report) = try runTool(["broadcast", "--subscribers", "5", "--duration", "0.5", "--drain", "1",
                                            "--channel-prefix", "bad~name"])
        XCTAssertEqual(status, 2)
        XCTAssertEqual(report.connected, 0)
        XCTAssertEqual(report.connectErrors, 5)
        XCTAssertEqual(report.published, 0)
        XCTAssertGreaterThan(report.publishErrors, 0)
        XCTAssertTrue(report.failures.contains { $0.hasPrefix("no subscriber connected: 5 of 5 failed (first: HTTP 400") }, "\(report.failures)")
        XCTAssertTrue(report.failures.contains { $0.contains("non-2xx") }, "\(report.failures)")
        XCTAssertTrue(report.failures.contains("nothing was published"), "\(report.failures)")
    }

    func testCLIFailsWhenNothingListens() throws {
        let port = try freePort()
        let (status, report) = try runTool(["broadcast", "--subscribers", "4", "--duration", "0.5", "--drain", "1"],
                                           target: "127.0.0.1:\(port)")
        XCTAssertEqual(status, 2)
        XCTAssertEqual(report.connectErrors, 4)
        XCTAssertEqual(report.publisherFailures, 1)
        XCTAssertTrue(report.failures.contains { $0.contains("ECONNREFUSED") }, "\(report.failures)")
        XCTAssertTrue(report.failures.contains("nothing was published"), "\(report.failures)")
    }

    func testRunWhoseSubscribersHearNothingFails() {
        // Subscribers stream another channel than the one published to: every publish is a
        // 200, and nothing arrives.
        var c = config(.broadcast, subscribers: 3)
        c.rate = 200
        c.duration = 0.5
        c.drainSeconds = 0.5
        c.templates.subscribePath = "/v1/channels/{ch}.elsewhere/events"
        let report = LoadRun(c).execute()
        XCTAssertEqual(report.connected, 3)
        XCTAssertGreaterThan(report.published, 0)
        XCTAssertEqual(report.publishErrors, 0)
        XCTAssertEqual(report.delivered, 0)
        XCTAssertTrue(report.failures.contains("\(report.published) event(s) published and none delivered"), "\(report.failures)")
        XCTAssertFalse(report.passed)
    }

    // MARK: --procs

    func testProcsSplitsChannelsOverProcessesAndAddsUpExactly() throws {
        let (status, report) = try runTool(["channels", "--channels", "10", "--subscribers", "40", "--publishers", "2",
                                            "--rate", "400", "--duration", "1.5", "--drain", "3", "--procs", "3",
                                            "--server-pid", "\(broker.process.processIdentifier)"])
        XCTAssertEqual(status, 0, "\(report.failures) \(report.errors)")
        XCTAssertEqual(report.workers, 3)
        XCTAssertEqual(report.subscribers, 40)
        XCTAssertEqual(report.connected, 40)
        XCTAssertEqual(report.channels, 10)
        XCTAssertEqual(report.publishers, 3, "two publishers over three workers: each worker needs one")
        XCTAssertEqual(report.loss, 0)
        XCTAssertEqual(report.duplicates, 0)
        XCTAssertEqual(report.reordered, 0)
        XCTAssertGreaterThan(report.published, 0)
        XCTAssertEqual(report.publishErrors, 0)
        // Every channel has 4 subscribers, and each got every event of its channel.
        XCTAssertEqual(report.delivered, 4 * report.published)
        XCTAssertEqual(report.latency.count, UInt64(report.delivered), "the workers' histograms, merged")
        XCTAssertNil(report.latencyBuckets)
        // Every answered publish timed from request to answer, the workers' histograms merged.
        XCTAssertEqual(report.publishLatency.count, UInt64(report.published))
        XCTAssertGreaterThan(report.publishLatency.p50Us, 0)
        XCTAssertLessThanOrEqual(report.publishLatency.p50Us, report.publishLatency.p99Us)
        XCTAssertNil(report.publishLatencyBuckets)
        let server = try XCTUnwrap(report.server)
        XCTAssertGreaterThan(server.cpuSeconds, 0)
        XCTAssertGreaterThanOrEqual(server.end.atNs, server.start.atNs)
        XCTAssertTrue(report.passed)
    }

    func testProcsReportsAWorkersLossAndExitsNonZero() throws {
        let (status, report) = try runTool(["channels", "--channels", "4", "--subscribers", "8", "--rate", "200",
                                            "--duration", "1", "--drain", "1", "--procs", "2", "--drop-seq", "3"])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(report.workers, 2)
        XCTAssertEqual(report.loss, 8, "one loss per subscriber, in both workers")
    }

    func testProcsFailsWhenNothingConnects() throws {
        let (status, report) = try runTool(["channels", "--channels", "4", "--subscribers", "8", "--rate", "200",
                                            "--duration", "0.5", "--drain", "1", "--procs", "2",
                                            "--channel-prefix", "bad~name"])
        XCTAssertEqual(status, 2)
        XCTAssertEqual(report.workers, 2)
        XCTAssertEqual(report.connectErrors, 8)
        XCTAssertTrue(report.failures.contains { $0.hasPrefix("no subscriber connected") }, "\(report.failures)")
    }

    func testProcsAboveTheChannelCountRunsOneProcessPerChannel() throws {
        let (status, report) = try runTool(["broadcast", "--subscribers", "6", "--rate", "100", "--duration", "0.5",
                                            "--drain", "1", "--procs", "4"])
        XCTAssertEqual(status, 0, "\(report.failures)")
        XCTAssertEqual(report.workers, 1)
        XCTAssertEqual(report.connected, 6)
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

    /// Runs the starling-load binary against the broker (or `target`); its exit status and JSON report.
    private func runTool(_ arguments: [String], target: String? = nil) throws -> (Int32, LoadReport) {
        let tool = URL(fileURLWithPath: BrokerProcess.binaryPath).deletingLastPathComponent().appendingPathComponent("starling-load")
        let p = Process()
        p.executableURL = tool
        p.arguments = arguments + ["--target", target ?? "127.0.0.1:\(broker.port)", "--json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let report = try JSONDecoder().decode(LoadReport.self, from: data)
        return (p.terminationStatus, report)
    }

    /// A loopback port nothing listens on (bound, then closed).
    private func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        return Int(UInt16(bigEndian: addr.sin_port))
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
