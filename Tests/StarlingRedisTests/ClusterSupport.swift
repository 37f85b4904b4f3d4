// The suite's Redis Cluster and what the cluster tests do to it. ops/scripts/test.sh starts
// it with ops/redis/cluster/cluster.sh (3 masters + 3 replicas of redis-server on loopback)
// and sets STARLING_TEST_REDIS_CLUSTER (the masters' URLs, comma-separated: what
// `--redis-cluster` takes) and STARLING_TEST_REDIS_CLUSTER_DIR (the nodes' directory,
// DIR/<port>/redis.conf). A test that needs the cluster fails when it is missing; none skips.
//
// Every helper reads the cluster's state from the nodes themselves (CLUSTER NODES, CLUSTER
// INFO, INFO), never from what it expects: after a failover or a slot migration the
// masters are other ports than the seeds. The shape a test may count on at its start is
// the one `ensureHealthy()` restores: 6 nodes up, 3 masters with one in-sync replica each,
// all 16384 slots served, no slot migrating, every node agreeing. Tests that kill or
// migrate call it in setUp (a node a failed test left dead is restarted there).
import Foundation
import StarlingClient
import XCTest

/// One node as CLUSTER NODES shows it.
struct ClusterNode: Equatable, Sendable, CustomStringConvertible {
    let id: String
    let port: Int
    let flags: Set<String>
    /// A replica's master; nil for a master.
    let masterID: String?
    /// The slots a master serves.
    let slots: [ClosedRange<Int>]
    /// Slots being moved: "[slot->-id]" (migrating away), "[slot-<-id]" (importing).
    let openSlots: [String]

    var isMaster: Bool { flags.contains("master") }
    var isFailing: Bool { flags.contains("fail") || flags.contains("fail?") }
    var url: String { "redis://127.0.0.1:\(port)" }
    var slotCount: Int { slots.reduce(0) { $0 + $1.count } }
    func owns(_ slot: Int) -> Bool { slots.contains { $0.contains(slot) } }
    var description: String { "\(isMaster ? "master" : "replica") :\(port) \(id.prefix(8))" }

    /// One line of CLUSTER NODES: `<id> <ip:port@bus> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>…`.
    init?(line: Substring) {
        let f = line.split(separator: " ")
        guard f.count >= 8, let colon = f[1].lastIndex(of: ":") else { return nil }
        let portText = f[1][f[1].index(after: colon)...].prefix { $0.isNumber }
        guard let port = Int(portText) else { return nil }
        id = String(f[0])
        self.port = port
        flags = Set(f[2].split(separator: ",").map(String.init))
        masterID = f[3] == "-" ? nil : String(f[3])
        var slots: [ClosedRange<Int>] = []
        var open: [String] = []
        for s in f.dropFirst(8) {
            if s.hasPrefix("[") { open.append(String(s)); continue }
            let ends = s.split(separator: "-").compactMap { Int($0) }
            if ends.count == 2 { slots.append(ends[0]...ends[1]) } else if ends.count == 1 { slots.append(ends[0]...ends[0]) }
        }
        self.slots = slots
        openSlots = open
    }
}

/// A master `killMaster` SIGKILLed: what `waitForPromotion` and `restartKilledNode` need.
struct KilledNode: Sendable {
    let node: ClusterNode
    let pid: Int32
    /// Its redis.conf: `redis-server <configFile>` brings it back (it rejoins as a replica).
    let configFile: String
    /// The replica that stands for it.
    let replicaID: String
    var port: Int { node.port }
}

struct TestCluster: Sendable {
    /// The masters' URLs when the suite started (`--redis-cluster` takes them comma-separated).
    let seeds: [String]
    let seedPorts: [Int]
    /// The nodes' directory (DIR/<port>/redis.conf), for restarts and a full reset.
    let dir: String

    /// The suite's cluster, from the environment; throws (the test fails) when it is missing.
    init() throws {
        let env = ProcessInfo.processInfo.environment
        guard let list = env["STARLING_TEST_REDIS_CLUSTER"], !list.isEmpty else {
            throw ClientError("STARLING_TEST_REDIS_CLUSTER is not set: run the suite with `make test` (ops/scripts/test.sh), which starts a private Redis Cluster")
        }
        seeds = list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        seedPorts = try seeds.map { url in
            guard let colon = url.lastIndex(of: ":"), let port = Int(url[url.index(after: colon)...].prefix { $0.isNumber }) else {
                throw ClientError("STARLING_TEST_REDIS_CLUSTER: not a redis://host:port URL: \(url)")
            }
            return port
        }
        if let d = env["STARLING_TEST_REDIS_CLUSTER_DIR"], !d.isEmpty {
            dir = d
        } else {
            // Else from a node's own config_file (DIR/<port>/redis.conf).
            var found: String?
            for port in seedPorts {
                if let file = try? Self.info(port, "server")["config_file"], !file.isEmpty {
                    found = URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().path
                    break
                }
            }
            guard let found else { throw ClientError("no node of \(list) answers INFO server: is the test cluster up?") }
            dir = found
        }
    }

    /// The value of `--redis-cluster`.
    var seedList: String { seeds.joined(separator: ",") }

    // MARK: talking to a node

    /// One command to the node at `port`, its reply as redis-cli prints it (errors such as
    /// `MOVED …` or `ASK …` come back as their text; an array one element a line). Throws
    /// only when the node cannot be reached. (A RESP connection, not a redis-cli process:
    /// the harness asks the six nodes many times a second while it waits.)
    func cli(_ port: Int, _ args: String...) throws -> String { try cli(port, args) }
    func cli(_ port: Int, _ args: [String]) throws -> String { try RESPConnection(port: port).command(args).text }

    /// Several commands on one connection, one reply each: ASKING then a command; a write
    /// then WAIT (WAIT counts the replicas that have the writes of its own connection:
    /// on a connection of its own it answers at once).
    func pipeline(_ port: Int, _ commands: [[String]]) throws -> [String] {
        try RESPConnection(port: port).send(commands).map(\.text)
    }

    /// INFO <section> of one node as key → value.
    static func info(_ port: Int, _ section: String) throws -> [String: String] {
        fields(try RESPConnection(port: port).command(["INFO", section]).text)
    }
    func info(_ port: Int, _ section: String) throws -> [String: String] { try Self.info(port, section) }

    private static func fields(_ text: String) -> [String: String] {
        var d: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            d[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return d
    }

    // MARK: the cluster's state

    /// Every node port the directory holds (DIR/<port>/redis.conf), whether it runs or not.
    func allPorts() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { Int($0) }
            .filter { FileManager.default.fileExists(atPath: "\(dir)/\($0)/redis.conf") }
            .sorted()
    }

    func isUp(_ port: Int) -> Bool { (try? cli(port, "PING")) == "PONG" }

    /// CLUSTER NODES as `port` sees it (by default: the first node that answers).
    func nodes(from port: Int? = nil) throws -> [ClusterNode] {
        for p in port.map({ [$0] }) ?? (seedPorts + allPorts()) {
            guard let text = try? cli(p, "CLUSTER", "NODES"), !text.hasPrefix("ERR") else { continue }
            let list = text.split(whereSeparator: \.isNewline).compactMap { ClusterNode(line: $0) }
            if !list.isEmpty { return list }
        }
        throw ClientError("no node of the test cluster answers CLUSTER NODES\(port.map { " (asked :\($0))" } ?? "")")
    }

    /// The masters that serve slots, by port.
    func masters() throws -> [ClusterNode] {
        try nodes().filter { $0.isMaster && !$0.isFailing && !$0.slots.isEmpty }.sorted { $0.port < $1.port }
    }

    /// The replicas of a master.
    func replicas(of master: ClusterNode) throws -> [ClusterNode] {
        try nodes().filter { $0.masterID == master.id && !$0.isFailing }
    }

    /// The slot of the channel's key `starling:{ch}` (CLUSTER KEYSLOT).
    func keyslot(_ channel: String) throws -> Int {
        try keyslots([channel])[0]
    }

    /// The slots of several channels, one CLUSTER KEYSLOT each on one connection.
    func keyslots(_ channels: [String]) throws -> [Int] {
        guard !channels.isEmpty else { return [] }
        let port = try liveSeedPort()
        let lines = try pipeline(port, channels.map { ["CLUSTER", "KEYSLOT", "starling:{\($0)}"] })
        let slots = lines.prefix(channels.count).compactMap { Int($0) }
        guard slots.count == channels.count else { throw ClientError("CLUSTER KEYSLOT: \(lines.joined(separator: " | "))") }
        return slots
    }

    /// The master that serves `slot`.
    func master(owning slot: Int) throws -> ClusterNode {
        guard let m = try masters().first(where: { $0.owns(slot) }) else { throw ClientError("no master serves slot \(slot)") }
        return m
    }

    func masterPort(owning slot: Int) throws -> Int { try master(owning: slot).port }

    /// `n` new channel names (n ≥ 3) whose slots are spread over every master: channel i
    /// lives on master i % masters, so all of them hold some.
    func channels(spreadOverAllMasters n: Int, prefix: String = "cl") throws -> [String] {
        let masters = try masters()
        precondition(n >= masters.count, "spreading over \(masters.count) masters takes at least \(masters.count) channels")
        var wanted = Array(repeating: 0, count: masters.count)
        for i in 0..<n { wanted[i % masters.count] += 1 }
        var byMaster: [[String]] = Array(repeating: [], count: masters.count)
        let base = uniqueChannel(prefix)
        var k = 0
        while zip(byMaster, wanted).contains(where: { $0.count < $1 }) {
            let batch = (0..<max(3 * n, 16)).map { i in "\(base)-\(k + i)" }
            k += batch.count
            for (ch, slot) in zip(batch, try keyslots(batch)) {
                guard let m = masters.firstIndex(where: { $0.owns(slot) }), byMaster[m].count < wanted[m] else { continue }
                byMaster[m].append(ch)
            }
            guard k < 100_000 else { throw ClientError("could not spread \(n) channels over \(masters.count) masters") }
        }
        return (0..<n).map { byMaster[$0 % masters.count][$0 / masters.count] }
    }

    private func liveSeedPort() throws -> Int {
        for p in seedPorts + allPorts() where isUp(p) { return p }
        throw ClientError("no node of the test cluster answers PING")
    }

    // MARK: health

    /// What keeps the cluster from the shape every test starts from; empty when healthy.
    func healthProblems() -> [String] {
        var problems: [String] = []
        let ports = allPorts()
        guard ports.count == 6 else { return ["\(dir) holds \(ports.count) nodes, not 6"] }
        var maps: [Int: String] = [:]
        for port in ports {
            guard isUp(port) else { problems.append(":\(port) is down"); continue }
            guard let state = try? fields(cli(port, "CLUSTER", "INFO")), let view = try? nodes(from: port) else {
                problems.append(":\(port) does not answer CLUSTER INFO/NODES"); continue
            }
            for (key, want) in [("cluster_state", "ok"), ("cluster_slots_ok", "16384"), ("cluster_known_nodes", "6")]
            where state[key] != want {
                problems.append(":\(port) \(key):\(state[key] ?? "?")")
            }
            for n in view where n.isFailing || n.flags.contains("handshake") || n.flags.contains("noaddr") {
                problems.append(":\(port) sees \(n) as \(n.flags.sorted().joined(separator: ","))")
            }
            for n in view where !n.openSlots.isEmpty { problems.append(":\(port) sees open slots \(n.openSlots) on \(n)") }
            let masters = view.filter { $0.isMaster && !$0.slots.isEmpty }
            if masters.count != 3 { problems.append(":\(port) sees \(masters.count) masters serving slots") }
            for m in masters where view.filter({ $0.masterID == m.id }).count != 1 {
                problems.append(":\(port) sees \(view.filter { $0.masterID == m.id }.count) replicas of \(m)")
            }
            maps[port] = masters.sorted { $0.port < $1.port }.map { "\($0.port):\($0.slots)" }.joined(separator: " ")
            if let me = view.first(where: { $0.flags.contains("myself") }), !me.isMaster {
                let repl = (try? info(port, "replication")) ?? [:]
                if repl["master_link_status"] != "up" { problems.append(":\(port) replica link \(repl["master_link_status"] ?? "?")") }
            }
        }
        if Set(maps.values).count > 1 { problems.append("the nodes disagree on the slot map: \(maps)") }
        return problems
    }

    private func fields(_ text: String) -> [String: String] { Self.fields(text) }

    /// Waits until the cluster is healthy; throws with what is still wrong.
    func waitHealthy(timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var problems = healthProblems()
        while !problems.isEmpty {
            guard Date() < deadline else { throw ClientError("the test cluster is not healthy after \(timeout) s: \(problems.joined(separator: "; "))") }
            usleep(100_000)
            problems = healthProblems()
        }
    }

    /// Brings the cluster back to the shape every test starts from: restarts the nodes of
    /// the directory that are down (they rejoin, as replicas where their shard failed
    /// over), finishes half-done slot moves (`redis-cli --cluster fix`), waits for health;
    /// when that does not come, starts the cluster anew on the same ports.
    func ensureHealthy() throws {
        if healthProblems().isEmpty { return }
        for port in allPorts() where !isUp(port) {
            try startNode(config: "\(dir)/\(port)/redis.conf", port: port)
        }
        if let any = allPorts().first(where: isUp),
           (try? nodes(from: any))?.contains(where: { !$0.openSlots.isEmpty }) == true {
            _ = try spawnAndWait(try executable("redis-cli"), ["--cluster", "fix", "127.0.0.1:\(any)", "--cluster-yes"])
        }
        do { try waitHealthy(timeout: 20) } catch { try resetCluster() }
    }

    /// Stops the whole cluster and starts a new one on the same ports (about 3 s): the
    /// first three ports are the masters again, so `seeds` holds again.
    func resetCluster() throws {
        guard let first = allPorts().first else { throw ClientError("no node directory in \(dir)") }
        let script = repositoryRoot.appendingPathComponent("ops/redis/cluster/cluster.sh").path
        let run = try spawnAndWait("/bin/bash", [script, "start", dir, "\(first)"])
        guard run.status == 0 else { throw ClientError("cluster.sh start \(dir) \(first) failed: \(run.output)") }
        try waitHealthy(timeout: 10)
    }

    // MARK: failover

    /// SIGKILLs the master that serves `slot` (its pid from INFO server): no shutdown,
    /// no last words to the cluster. Returns once the process is gone.
    func killMaster(owning slot: Int) throws -> KilledNode {
        let master = try self.master(owning: slot)
        guard let replica = try replicas(of: master).first else { throw ClientError("\(master) has no replica to promote") }
        let server = try info(master.port, "server")
        guard let pidText = server["process_id"], let pid = Int32(pidText), let config = server["config_file"], !config.isEmpty else {
            throw ClientError("INFO server of \(master) has no process_id/config_file")
        }
        guard kill(pid, SIGKILL) == 0 else { throw ClientError("kill -9 \(pid): errno \(errno)") }
        let deadline = Date().addingTimeInterval(5)
        while processAlive(pid) {
            guard Date() < deadline else { throw ClientError("redis-server \(pid) outlived SIGKILL") }
            usleep(10_000)
        }
        return KilledNode(node: master, pid: pid, configFile: config, replicaID: replica.id)
    }

    /// Waits until the killed master's replica is a master serving its slots and every
    /// live node says cluster_state:ok with all slots served. Returns the new master.
    @discardableResult
    func waitForPromotion(of killed: KilledNode, timeout: Double = 20) throws -> ClusterNode {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            var promoted: ClusterNode?
            var ok = true
            for port in allPorts() where port != killed.port && isUp(port) {
                guard let view = try? nodes(from: port), let info = try? fields(cli(port, "CLUSTER", "INFO")),
                      let r = view.first(where: { $0.id == killed.replicaID }),
                      r.isMaster, killed.node.slots.allSatisfy({ s in r.slots.contains(s) }),
                      info["cluster_state"] == "ok", info["cluster_slots_ok"] == "16384" else {
                    ok = false
                    last = ":\(port) not yet"
                    break
                }
                promoted = r
            }
            if ok, let promoted { return promoted }
            usleep(50_000)
        }
        throw ClientError("the replica \(killed.replicaID.prefix(8)) of \(killed.node) was not promoted within \(timeout) s (\(last))")
    }

    /// Starts the killed node again from its config file and waits for a healthy cluster
    /// (it rejoins as the replica of the master that replaced it).
    func restartKilledNode(_ killed: KilledNode, timeout: Double = 20) throws {
        try relaunch(killed)
        try waitHealthy(timeout: timeout)
    }

    /// Starts the killed node again and returns once it answers, without waiting for the
    /// cluster to settle (a test that publishes meanwhile).
    func relaunch(_ killed: KilledNode) throws {
        try startNode(config: killed.configFile, port: killed.port)
    }

    private func startNode(config: String, port: Int) throws {
        // daemonize yes: the process we start forks the node and exits at once
        let run = try spawnAndWait(try executable("redis-server"), [config])
        guard run.status == 0 else { throw ClientError("redis-server \(config) exited \(run.status): \(run.output)") }
        let deadline = Date().addingTimeInterval(10)
        while !isUp(port) {
            guard Date() < deadline else { throw ClientError("redis-server \(config) does not answer on :\(port)") }
            usleep(20_000)
        }
    }

    // MARK: resharding

    /// Moves `slot` to `target` in one go (all three steps of `SlotMigration`).
    func migrateSlot(_ slot: Int, to target: ClusterNode) throws {
        let m = try SlotMigration(cluster: self, slot: slot, to: target)
        try m.begin()
        try m.moveKeys()
        try m.finish()
    }
}

/// A slot moved by hand, step by step, so a test can act between the steps:
/// - after `begin()` the slot is MIGRATING on the source and IMPORTING on the target; the
///   source still serves the keys it has and answers `ASK` for the others;
/// - after `moveKeys()` every key of the slot is on the target: the source answers `ASK`
///   for all of them (a client sends ASKING, then the command, to the target);
/// - after `finish()` the target owns the slot (SETSLOT NODE on every master) and the
///   source answers `MOVED`; sharded subscribers of the slot on the source are told
///   `sunsubscribe`.
struct SlotMigration: Sendable {
    let cluster: TestCluster
    let slot: Int
    let source: ClusterNode
    let target: ClusterNode

    init(cluster: TestCluster, slot: Int, to target: ClusterNode) throws {
        self.cluster = cluster
        self.slot = slot
        source = try cluster.master(owning: slot)
        self.target = target
        guard source.id != target.id else { throw ClientError("slot \(slot) is already on \(target)") }
        guard target.isMaster else { throw ClientError("\(target) is not a master") }
    }

    /// IMPORTING on the target first, then MIGRATING on the source (the order Redis documents).
    func begin() throws {
        try expectOK(cluster.cli(target.port, "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", source.id), "IMPORTING on \(target)")
        try expectOK(cluster.cli(source.port, "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", target.id), "MIGRATING on \(source)")
    }

    /// MIGRATEs every key of the slot from the source to the target (up to 1000 keys a
    /// call: one call moves a channel's stream and its :producers and :state keys together).
    /// Returns how many keys moved.
    @discardableResult
    func moveKeys() throws -> Int {
        var moved = 0
        while true {
            let text = try cluster.cli(source.port, "CLUSTER", "GETKEYSINSLOT", "\(slot)", "1000")
            let keys = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            if keys.isEmpty { return moved }
            let reply = try cluster.cli(source.port, ["MIGRATE", "127.0.0.1", "\(target.port)", "", "0", "5000", "KEYS"] + keys)
            guard reply == "OK" || reply == "NOKEY" else { throw ClientError("MIGRATE of slot \(slot) to \(target): \(reply)") }
            moved += keys.count
        }
    }

    /// Gives the slot to the target on the target, the source, then every other master,
    /// and waits until every live node sees it there with no slot open.
    func finish() throws {
        try expectOK(cluster.cli(target.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id), "SETSLOT NODE on \(target)")
        try expectOK(cluster.cli(source.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id), "SETSLOT NODE on \(source)")
        for m in try cluster.masters() where m.id != target.id && m.id != source.id {
            try expectOK(cluster.cli(m.port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", target.id), "SETSLOT NODE on \(m)")
        }
        let deadline = Date().addingTimeInterval(10)
        while true {
            let views = cluster.allPorts().filter(cluster.isUp).compactMap { try? cluster.nodes(from: $0) }
            let settled = !views.isEmpty && views.allSatisfy { view in
                view.first(where: { $0.id == target.id })?.owns(slot) == true
                    && !view.contains(where: { $0.id != target.id && $0.owns(slot) })
                    && view.allSatisfy { $0.openSlots.isEmpty }
            }
            if settled { return }
            guard Date() < deadline else { throw ClientError("slot \(slot) did not settle on \(target) within 10 s") }
            usleep(50_000)
        }
    }

    private func expectOK(_ reply: String, _ what: String) throws {
        guard reply == "OK" else { throw ClientError("CLUSTER SETSLOT \(slot): \(what): \(reply)") }
    }
}

/// Polls `condition` every 50 ms until it holds; throws after `seconds`.
func waitFor(_ what: String, _ seconds: Double, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return }
        usleep(50_000)
    }
    throw ClientError("timed out waiting for \(what)")
}

/// The counter `starling_redis_redirects_total{kind="…"}` of a broker.
func redirects(_ broker: BrokerProcess, _ kind: String) throws -> Int {
    let text = try broker.client.request("GET", "/metrics").text
    let prefix = "starling_redis_redirects_total{kind=\"\(kind)\"} "
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }), let n = Int(line.dropFirst(prefix.count)) else {
        throw ClientError("no \(prefix) in /metrics")
    }
    return n
}

/// Alive and not a zombie (a daemonized redis-server is nobody's child here).
func processAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let close = stat.lastIndex(of: ")") else { return true }
    let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
    return state != "Z" && state != "X"
}
