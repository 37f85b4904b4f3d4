// WorkerFleet: `starling-load --procs N`. Starts N copies of this executable with
// `--worker k/N` (each runs its WorkerShare: its channels with their subscribers and
// publishing), waits until every one has connected and says "ready", sends them all
// SIGUSR1 so their measured phases start together, and merges their JSON reports.
// A worker that dies or leaves no report fails the run.
import Foundation

public enum WorkerFleet {
    /// `arguments`: the command line the workers share (without --procs, --json, --output);
    /// `config`: the whole run, as parsed from it (its channel prefix is passed on, so
    /// every worker names the channels alike).
    public static func run(executable: String, arguments: [String], config: LoadConfig, count: Int) -> LoadReport {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-load-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var failures: [String] = []
        var workers: [(index: Int, process: Process, stdout: Pipe, report: URL)] = []
        for k in 0..<count {
            let p = Process()
            let out = Pipe()
            let file = dir.appendingPathComponent("worker-\(k).json")
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments + ["--worker", WorkerPart(index: k, count: count).text,
                                       "--channel-prefix", config.channelPrefix, "--output", file.path]
            p.standardOutput = out
            do {
                try p.run()
                workers.append((k, p, out, file))
            } catch {
                failures.append("worker \(k) could not start: \(error)")
            }
        }
        // Every worker connects its subscribers, then waits; EOF means it ended early.
        for w in workers { waitForReady(w.stdout.fileHandleForReading) }
        for w in workers where w.process.isRunning { kill(w.process.processIdentifier, SIGUSR1) }

        var reports: [(worker: Int, report: LoadReport)] = []
        for w in workers {
            w.process.waitUntilExit()
            let status = w.process.terminationStatus
            let signalled = w.process.terminationReason == .uncaughtSignal
            if let data = try? Data(contentsOf: w.report), let report = try? JSONDecoder().decode(LoadReport.self, from: data) {
                reports.append((w.index, report))
                if signalled || status > 2 { failures.append("worker \(w.index) exited with \(signalled ? "signal" : "status") \(status)") }
            } else {
                failures.append("worker \(w.index) left no report (\(signalled ? "signal" : "exit status") \(status))")
            }
        }
        var merged = LoadReport.merging(reports, config: config, failures: failures)
        merged.workers = count
        return merged
    }

    private static func waitForReady(_ handle: FileHandle) {
        var seen = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            seen.append(chunk)
            if String(decoding: seen, as: UTF8.self).contains("ready\n") { return }
        }
    }
}
