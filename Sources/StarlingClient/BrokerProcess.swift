// BrokerProcess: starts the real `starling` binary on an ephemeral port and stops it.
// Used by the test suites and the load tool's smoke runs; never a stand-in.
import Foundation

// @unchecked Sendable: tests hand a node to a helper thread; its state is set in init and
// then only read (the child process is the shared thing, and it is another process).
public final class BrokerProcess: @unchecked Sendable {
    public let process = Process()
    public let port: Int
    public let arguments: [String]
    private let output = Pipe()

    /// The `starling` binary: $STARLING_BIN, else beside the running test bundle or tool.
    public static var binaryPath: String {
        if let p = ProcessInfo.processInfo.environment["STARLING_BIN"] { return p }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("starling").path
    }

    /// The Redis URL of the suite's private redis-server (the test command sets it).
    /// Tests that need Redis fail, never skip, when it is missing.
    public static func redisURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["STARLING_TEST_REDIS"], !url.isEmpty else {
            throw ClientError("STARLING_TEST_REDIS is not set: run the suite with `make test`, which starts a private Redis")
        }
        return url
    }

    /// Starts `starling serve --listen 127.0.0.1:0 <arguments>` and waits for its port.
    /// The broker sees no STARLING_* variable of the caller's (every one names a setting
    /// there), only `environment`; with `logFile` its stderr (the log) goes to that file.
    public init(_ arguments: [String] = [], environment: [String: String] = [:], logFile: String? = nil,
                timeout: Double = 10) throws {
        self.arguments = arguments
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        process.arguments = ["serve", "--listen", "127.0.0.1:0"] + arguments
        process.environment = Self.childEnvironment(environment)
        process.standardOutput = output
        if let logFile {
            FileManager.default.createFile(atPath: logFile, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: logFile)
        } else if ProcessInfo.processInfo.environment["STARLING_TEST_LOGS"] == nil {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        let handle = output.fileHandleForReading
        var seen = Data()
        let deadline = Date().addingTimeInterval(timeout)
        var found: Int?
        while found == nil, Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
            let text = String(decoding: seen, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on http://") }),
               let url = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
               let colon = url.lastIndex(of: ":") {
                found = Int(url[url.index(after: colon)...])
            }
        }
        guard let port = found else {
            process.terminate()
            throw ClientError("starling did not report its port (binary \(Self.binaryPath)): \(String(decoding: seen, as: UTF8.self))")
        }
        self.port = port
    }

    public var client: StarlingHTTPClient { StarlingHTTPClient(port: port) }

    /// This process's environment without its STARLING_* variables (the test command's
    /// own, such as STARLING_TEST_REDIS, would be unknown settings to the broker), plus `extra`.
    public static func childEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("STARLING_") }
        env.merge(extra) { $1 }
        return env
    }

    /// Runs `starling <arguments>` to its end (check, token, a serve that must refuse to
    /// start); its exit status, stdout and stderr.
    public static func run(_ arguments: [String], environment: [String: String] = [:],
                           timeout: Double = 20) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments = arguments
        p.environment = childEnvironment(environment)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes while it runs, so a chatty process never blocks on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let errReader = Thread { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); throw ClientError("starling \(arguments) did not exit in \(timeout) s") }
        while errReader.isExecuting || !errReader.isFinished { usleep(1_000) }
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errBox.data, as: UTF8.self))
    }

    /// Sends SIGTERM and waits for the exit status (nil if it did not exit in time).
    @discardableResult
    public func terminate(timeout: Double = 10) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return nil }
        return process.terminationStatus
    }

    public func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    deinit { kill9() }
}

/// A channel name no other test uses.
public func uniqueChannel(_ prefix: String = "t") -> String {
    "\(prefix)-\(UInt32.random(in: 0...UInt32.max))-\(UInt32.random(in: 0...UInt32.max))"
}
