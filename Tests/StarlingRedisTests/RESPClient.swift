// A blocking RESP2 client for the cluster harness: one loopback connection, commands in,
// replies out, nothing more. The harness polls the six nodes many times a second while it
// waits for a failover; a redis-cli process per question would cost more than the wait.
import Foundation
import StarlingClient

/// A RESP2 reply.
indirect enum RESPReply: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk(String)
    case null
    case array([RESPReply])

    /// As redis-cli prints it when its output is not a terminal: one line per element,
    /// an error's text, nothing for nil.
    var text: String {
        switch self {
        case .simple(let s), .error(let s), .bulk(let s): return s
        case .integer(let n): return "\(n)"
        case .null: return ""
        case .array(let a): return a.map(\.text).joined(separator: "\n")
        }
    }
}

final class RESPConnection {
    let port: Int
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var offset = 0

    /// Connects to 127.0.0.1:port; replies must come within `timeout` seconds.
    init(port: Int, timeout: Double = 5) throws {
        self.port = port
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            let e = errno
            close(fd)
            throw ClientError("Could not connect to Redis at 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
    }

    deinit { close(fd) }

    /// Sends every command, then reads one reply per command.
    func send(_ commands: [[String]]) throws -> [RESPReply] {
        var out: [UInt8] = []
        for args in commands {
            out += Array("*\(args.count)\r\n".utf8)
            for a in args {
                let bytes = Array(a.utf8)
                out += Array("$\(bytes.count)\r\n".utf8) + bytes + [13, 10]
            }
        }
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ClientError(":\(port): write failed (errno \(errno))") }
            sent += n
        }
        return try commands.map { _ in try reply() }
    }

    func command(_ args: [String]) throws -> RESPReply { try send([args])[0] }

    private func reply() throws -> RESPReply {
        let line = try readLine()
        guard let kind = line.first else { throw ClientError(":\(port): empty reply line") }
        let rest = String(line.dropFirst())
        switch kind {
        case "+": return .simple(rest)
        case "-": return .error(rest)
        case ":": return .integer(Int(rest) ?? 0)
        case "$":
            guard let n = Int(rest) else { throw ClientError(":\(port): bad bulk length \(rest)") }
            if n < 0 { return .null }
            let bytes = try readBytes(n + 2)
            return .bulk(String(decoding: bytes.dropLast(2), as: UTF8.self))
        case "*":
            guard let n = Int(rest) else { throw ClientError(":\(port): bad array length \(rest)") }
            if n < 0 { return .null }
            return .array(try (0..<n).map { _ in try reply() })
        default:
            throw ClientError(":\(port): unexpected reply \(line)")
        }
    }

    private func readLine() throws -> String {
        while true {
            if let cr = buffer[offset...].firstIndex(of: 13), cr + 1 < buffer.count, buffer[cr + 1] == 10 {
                let line = String(decoding: buffer[offset..<cr], as: UTF8.self)
                offset = cr + 2
                return line
            }
            try fill()
        }
    }

    private func readBytes(_ n: Int) throws -> ArraySlice<UInt8> {
        while buffer.count - offset < n { try fill() }
        defer { offset += n }
        return buffer[offset..<(offset + n)]
    }

    private func fill() throws {
        if offset > 0 {
            buffer.removeFirst(offset)
            offset = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw ClientError(":\(port): connection closed or timed out (errno \(errno))") }
        buffer += chunk[0..<n]
    }
}

/// Runs a program to its end with posix_spawn (stdout and stderr into one text) and reaps
/// it. Used for programs that daemonize (redis-server) or start daemons (cluster.sh):
/// their child exits at once and must be waited for here.
func spawnAndWait(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "starling-spawn-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // Nothing of this process's but what is given here (pipes of running brokers, sockets):
    // a daemon that kept one would hold it open for as long as it runs. (glibc ignores a
    // close of a descriptor that is already closed, such as the listing's own.)
    let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
    for fd in open where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw ClientError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    // WIFEXITED/WEXITSTATUS by hand (macros): low 7 bits 0 means it exited.
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
}
