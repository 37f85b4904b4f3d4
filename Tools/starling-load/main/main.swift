// starling-load: the command line of the bundled load generator (SPEC §8). Wiring only:
// flags → LoadConfig → LoadRun (or N worker processes, --procs) → summary (stdout),
// JSON (--json), exit status. Exit 1 on any loss, duplicate or reordering; 2 when the run
// measured nothing: no subscriber connected, a publish was refused or unanswered, a
// publisher failed, nothing was published or nothing delivered (the summary says which).
import ArgumentParser
import Foundation
import StarlingLoadKit

struct StarlingLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling-load",
        abstract: "Load generator for SSE brokers: Starling by default, Nchan (or others) through URL templates.",
        discussion: """
        Scenarios: broadcast (1 channel × N), channels (K channels × N/K, the AI-token shape), idle (connections \
        only), replay (fill, then resume from earliest), slow (broadcast where --slow subscribers stop reading).
        Nchan: --publish-url /pub/{ch} --subscribe-url /sub/{ch} --body '{payload}'.
        """)

    @Argument(help: "broadcast | channels | idle | replay | slow")
    var scenario: String = "broadcast"

    @Option(help: "Server address, HOST:PORT (IPv4).")
    var target = "127.0.0.1:8080"
    @Option(help: "Subscriber connections in all.")
    var subscribers: Int?
    @Option(help: "Channels (subscriber i listens to channel i % K).")
    var channels: Int?
    @Option(help: "Publisher connections (channel i belongs to publisher i % P).")
    var publishers = 1
    @Option(help: "Publishes per second over all channels; omit for flat out.")
    var rate: Double?
    @Option(help: "Bytes of each event's data object.")
    var payload = 100
    @Option(help: "Seconds of publishing (idle: of holding).")
    var duration: Double = 10
    @Option(help: "New subscriber connections per second.")
    var ramp: Double = 5_000
    @Option(help: "Flat out: events per channel allowed ahead of its slowest delivery.")
    var window = 16
    @Option(help: "Pipelined publish requests per publisher connection.")
    var pipeline = 64
    @Option(help: "slow: subscribers that stop reading.")
    var slow = 10
    @Option(help: "replay: events put in each channel before subscribing.")
    var replayEvents = 10_000
    @Option(help: "replay: Last-Event-ID to resume from (none: send no header, the URL decides).")
    var replayFrom = "earliest"
    @Option(help: "Loopback source addresses, comma separated or a range like 127.0.0.2-127.0.0.9.")
    var sources = ""
    @Option(help: "Publish path template ({ch} is the channel).")
    var publishURL = "/v1/channels/{ch}/events"
    @Option(help: "Subscribe path template ({ch} is the channel).")
    var subscribeURL = "/v1/channels/{ch}/events"
    @Option(help: "Publish body template ({payload} is the event's data object).")
    var body = "{\"data\":{payload}}"
    @Option(help: "Publish Content-Type.")
    var contentType = "application/json"
    @Option(help: "Extra request header, 'Name: value' (repeatable).")
    var header: [String] = []
    @Option(help: "Channel name prefix (default: fresh per run).")
    var channelPrefix: String?
    @Option(help: "Server PID: CPU seconds and RSS from /proc.")
    var serverPid: Int32?
    @Option(help: "Another process counted as part of the server (its Redis), repeatable.")
    var alsoMeasurePid: [Int32] = []
    @Option(help: "Seconds to wait for the last events after publishing stops.")
    var drain: Double = 5
    @Option(help: ArgumentHelp("Self-check: skip this seq when publishing (the run must report loss).", visibility: .hidden))
    var dropSeq: UInt64?
    @Option(help: "Load-tool processes: each takes every N-th channel with its subscribers and publishing (at most one per channel).")
    var procs = 1
    @Option(help: ArgumentHelp("Run as worker K of N of a --procs run (set by the parent).", visibility: .hidden))
    var worker: String?
    @Flag(help: "Do not reconnect dropped subscribers.")
    var noReconnect = false
    @Flag(help: "Print the JSON report instead of the summary.")
    var json = false
    @Option(help: "Also write the JSON report to this file.")
    var output: String?

    func validate() throws {
        guard Scenario(rawValue: scenario) != nil else {
            throw ValidationError("unknown scenario '\(scenario)': \(Scenario.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard procs >= 1 else { throw ValidationError("--procs takes a count of 1 or more") }
        if let worker, WorkerPart(worker) == nil { throw ValidationError("--worker takes K/N") }
        if worker != nil, output == nil { throw ValidationError("--worker needs --output") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        var config = try makeConfig()
        let report: LoadReport
        if let worker {
            config.part = WorkerPart(worker)
            config.progress = false
            report = LoadRun(config).execute()
        } else if procs > 1 {
            let count = min(procs, config.channels)
            if count < procs {
                System.writeStderr("starling-load: --procs \(procs) → \(count): a channel and its subscribers stay in one process\n")
            }
            report = count > 1 ? WorkerFleet.run(executable: Self.executablePath, arguments: workerArguments(),
                                                 config: config, count: count)
                               : LoadRun(config).execute()
        } else {
            report = LoadRun(config).execute()
        }
        if worker == nil {
            if json { print(report.json()) } else { print(report.summary, terminator: "") }
        }
        if let output { try report.json().write(toFile: output, atomically: true, encoding: .utf8) }
        if !report.isCorrect { throw ExitCode(1) }
        if !report.passed { throw ExitCode(2) }
    }

    static var executablePath: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

    /// This command line as the workers get it: without what only the parent does.
    private func workerArguments() -> [String] {
        var out: [String] = []
        var skipNext = false
        for a in CommandLine.arguments.dropFirst() {
            if skipNext { skipNext = false; continue }
            if a == "--procs" || a == "--output" || a == "--channel-prefix" { skipNext = true; continue }
            if a.hasPrefix("--procs=") || a.hasPrefix("--output=") || a.hasPrefix("--channel-prefix=") || a == "--json" { continue }
            out.append(a)
        }
        return out
    }

    private func makeConfig() throws -> LoadConfig {
        var c = LoadConfig()
        c.scenario = Scenario(rawValue: scenario)!
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
            throw ValidationError("--target takes HOST:PORT")
        }
        c.host = String(target[..<colon])
        c.port = port
        switch c.scenario {
        case .broadcast: c.subscribers = subscribers ?? 1_000; c.channels = 1
        case .channels: c.channels = channels ?? 2_000; c.subscribers = subscribers ?? c.channels * 2
        case .idle: c.subscribers = subscribers ?? 10_000; c.channels = channels ?? 1
        case .replay: c.subscribers = subscribers ?? 10; c.channels = channels ?? 1
        case .slow: c.subscribers = subscribers ?? 110; c.channels = 1; c.slowSubscribers = slow
        }
        if let channels, c.scenario != .broadcast, c.scenario != .slow { c.channels = channels }
        c.channels = max(1, c.channels)
        c.publishers = max(1, publishers)
        c.rate = rate
        c.payloadSize = payload
        c.duration = duration
        c.rampPerSecond = max(1, ramp)
        c.window = max(1, window)
        c.pipeline = max(1, pipeline)
        c.replayEvents = replayEvents
        c.replayFrom = replayFrom == "none" ? "" : replayFrom
        c.sources = try Self.parseSources(sources)
        c.templates = Templates(publishPath: publishURL, subscribePath: subscribeURL, body: body, contentType: contentType)
        c.extraHeaders = try header.map { h in
            guard let colon = h.firstIndex(of: ":") else { throw ValidationError("--header takes 'Name: value'") }
            return (String(h[..<colon]), h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        if let channelPrefix { c.channelPrefix = channelPrefix }
        c.serverPID = serverPid
        c.alsoMeasuredPIDs = alsoMeasurePid
        c.drainSeconds = drain
        c.reconnect = !noReconnect
        c.dropSeq = dropSeq
        c.progress = !json
        return c
    }

    /// "127.0.0.2,127.0.0.3" or "127.0.0.2-127.0.0.9" (last octet range).
    static func parseSources(_ text: String) throws -> [String] {
        var out: [String] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let ends = part.split(separator: "-")
            if ends.count == 2, let dot = ends[0].lastIndex(of: "."),
               let lo = Int(ends[0][ends[0].index(after: dot)...]), let hi = Int(ends[1].split(separator: ".").last ?? "") {
                let prefix = ends[0][...dot]
                for k in lo...max(lo, hi) { out.append("\(prefix)\(k)") }
            } else {
                out.append(part)
            }
        }
        return out
    }
}

StarlingLoad.main()
