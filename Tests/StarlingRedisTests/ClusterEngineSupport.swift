// What the cluster engine tests need from a Redis Cluster: the suite's seeds
// (STARLING_TEST_REDIS_CLUSTER), slots and their masters read with redis-cli, a slot moved
// between masters by hand (so a test can act inside the ASK window), and a private
// 6-node cluster a failover test may kill a master of. Prefixed `ClusterLab` so it stands
// beside the harness's own ClusterSupport.swift. Fails, never skips, without a cluster.
import Foundation
import StarlingClient
import XCTest

enum ClusterLab {
    /// The suite's cluster: comma-separated seed URLs.
    static func seeds() throws -> String {
        guard let s = ProcessInfo.processInfo.environment["STARLING_TEST_REDIS_CLUSTER"], !s.isEmpty else {
            throw ClientError("STARLING_TEST_REDIS_CLUSTER is not set: run the suite with `make test`, which starts a private Redis Cluster")
        }
        return s
    }

    /// The port of the first seed (`redis://127.0.0.1:7000` → 7000).
    static func seedPort(_ seeds: String) throws -> Int {
        guard let first = seeds.split(separator: ",").first, let colon = first.lastIndex(of: ":"),
              let port = Int(first[first.index(after: colon)...].prefix(while: { $0.isNumber })) else {
            throw ClientError("cannot read a port from \(seeds)")
        }
        return port
    }

    static func cli(_ port: Int, _ args: String...) throws -> String { try redisCLI(["-p", "\(port)"] + args) }

    /// CLUSTER KEYSLOT of the channel's stream key.
    static func slot(_ port: Int, _ channel: String) throws -> Int {
        let text = try cli(port, "CLUSTER", "KEYSLOT", "starling:{\(channel)}")
        guard let n = Int(text) else { throw ClientError("CLUSTER KEYSLOT answered \(text)") }
        return n
    }

    struct Master {
        var id: String
        var port: Int
        var slots: [ClosedRange<Int>]
        func owns(_ slot: Int) -> Bool { slots.contains { $0.contains(slot) } }
    }

    /// The masters CLUSTER NODES (asked on `port`) lists as healthy, with their slots.
    static func masters(_ port: Int) throws -> [Master] {
        try cli(port, "CLUSTER", "NODES").split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 8, f[2].contains("master"), !f[2].contains("fail"), f[7] == "connected" else { return nil }
            guard let at = f[1].firstIndex(of: "@") ?? Optional(f[1].endIndex), let colon = f[1][..<at].lastIndex(of: ":"),
                  let p = Int(f[1][f[1].index(after: colon)..<at]) else { return nil }
            let slots: [ClosedRange<Int>] = f.dropFirst(8).compactMap { r in
                guard !r.hasPrefix("[") else { return nil }
                let ends = r.split(separator: "-").compactMap { Int($0) }
                return ends.count == 2 ? ends[0]...ends[1] : ends.count == 1 ? ends[0]...ends[0] : nil
            }
            return Master(id: f[0], port: p, slots: slots)
        }.filter { !$0.slots.isEmpty }
    }

    /// One fresh channel on each master (in the order `masters` lists them).
    static func channelOnEachMaster(_ port: Int, _ prefix: String) throws -> [(channel: String, master: Master)] {
        let ms = try masters(port)
        var out: [(String, Master)] = []
        for m in ms {
            var found: String?
            for _ in 0..<2000 {
                let ch = uniqueChannel(prefix)
                if m.owns(try slot(port, ch)) { found = ch; break }
            }
            guard let found else { throw ClientError("no channel found on master \(m.port)") }
            out.append((found, m))
        }
        return out
    }

    /// Moves `slot` from `source` to `target` the way `redis-cli --cluster reshard` does:
    /// IMPORTING / MIGRATING, MIGRATE of its keys, then — after `askWindow` ran, while the
    /// source answers ASK for the moved keys — SETSLOT NODE on every master.
    static func migrate(slot: Int, from source: Master, to target: Master, allMasters: [Master], askWindow: () throws -> Void) throws {
        func ok(_ text: String, _ what: String) throws { guard text == "OK" else { throw ClientError("\(what): \(text)") } }
        try ok(try cli(target.port, "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", source.id), "IMPORTING")
        try ok(try cli(source.port, "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", target.id), "MIGRATING")
        let keys = try cli(source.port, "CLUSTER", "GETKEYSINSLOT", "\(slot)", "1000").split(separator: "\n").map(String.init)
            .filter { !$0.isEmpty }
        if !keys.isEmpty {
            // One MIGRATE for all of them: the stream and its producer record move together.
            let text = try redisCLI(["-p", "\(source.port)", "MIGRATE", "127.0.0.1", "\(target.port)", "", "0", "5000", "KEYS"] + keys)
            try ok(text, "MIGRATE")
        }
        try askWindow()
        try ok(try cli(target.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id), "SETSLOT NODE on the target")
        try ok(try cli(source.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id), "SETSLOT NODE on the source")
        for m in allMasters where m.port != source.port && m.port != target.port {
            _ = try cli(m.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id)
        }
    }

    /// The counter `starling_redis_redirects_total{kind="…"}` of a broker.
    static func redirects(_ broker: BrokerProcess, _ kind: String) throws -> Int {
        let text = try broker.client.request("GET", "/metrics").text
        let prefix = "starling_redis_redirects_total{kind=\"\(kind)\"} "
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }), let n = Int(line.dropFirst(prefix.count)) else {
            throw ClientError("no \(prefix) in /metrics")
        }
        return n
    }
}

/// A 3-master, 3-replica cluster of this test alone (a failover test kills a master of
/// it), on free loopback ports; `cluster-require-full-coverage no` so the other shards keep
/// serving while one fails over.
extension ClusterLab {
final class PrivateCluster {
    let ports: [Int]
    let dir: URL
    let nodeTimeoutMs: Int
    private var processes: [Int: Process] = [:]

    init(nodeTimeoutMs: Int = 1000) throws {
        var ports: [Int] = []
        while ports.count < 6 {
            let p = try freePort()
            // The cluster bus listens on port + 10000.
            if p < 55000, !ports.contains(p) { ports.append(p) }
        }
        self.ports = ports
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("starling-cluster-test-\(UUID().uuidString)")
        self.nodeTimeoutMs = nodeTimeoutMs
        for port in ports { try launch(port) }
        for port in ports { try ClusterLab.waitFor("redis-server \(port) to answer PING", 10) { (try? ClusterLab.cli(port, "PING")) == "PONG" } }
        let create = try redisCLI(["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "1", "--cluster-yes"])
        guard create.contains("[OK] All 16384 slots covered") else { throw ClientError("cluster create: \(create)") }
        try ClusterLab.waitFor("the cluster to be ok on every node", 20) {
            ports.allSatisfy { (try? ClusterLab.cli($0, "CLUSTER", "INFO"))?.contains("cluster_state:ok") == true }
                && (try? ClusterLab.masters(ports[0]).count) == 3
        }
    }

    /// Starts (or restarts, with its nodes.conf: it rejoins as it left) the node on `port`.
    func launch(_ port: Int) throws {
        let d = dir.appendingPathComponent("\(port)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try executable("redis-server"))
        p.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", d.path, "--save", "", "--appendonly", "no",
                       "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", "\(nodeTimeoutMs)", "--cluster-require-full-coverage", "no", "--repl-diskless-sync-delay", "0",
                       "--logfile", d.appendingPathComponent("redis.log").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes[port] = p
    }

    var seeds: String { ports.prefix(2).map { "redis://127.0.0.1:\($0)" }.joined(separator: ",") }

    /// SIGKILL of one node (no shutdown, no last replication).
    func kill(port: Int) {
        guard let p = processes[port], p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        processes[port] = nil
    }

    func alivePort(except dead: Int) -> Int { ports.first { $0 != dead && processes[$0] != nil }! }

    deinit {
        for p in processes.values where p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }
}

    static func waitFor(_ what: String, _ seconds: Double, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return }
        usleep(50_000)
    }
    throw ClientError("timed out waiting for \(what)")
}
}
