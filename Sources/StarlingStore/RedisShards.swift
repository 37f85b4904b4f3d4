// RedisShards: where each channel's commands go. One Redis is the one-shard case (every
// slot on one node, no redirects); a Redis Cluster is named by seed nodes, its slot map
// read with CLUSTER SLOTS and refreshed on MOVED, on a lost or pushed-away subscription,
// on connection loss, every few seconds, and every 200 ms while some slot has no
// reachable master (a failover in progress).
//
// Each node (a master that owns slots, or a seed) has a hiredis command connection and a
// sharded pub/sub connection (RedisSubscriber). `send` routes by CRC16 slot: it follows
// `MOVED` (the map is updated at once and refreshed in full), follows `ASK` (`ASKING`, then
// the command, map unchanged), waits briefly on `TRYAGAIN`/`CLUSTERDOWN` or a node still
// connecting, and otherwise answers nil at once, so a channel whose slot has no reachable
// master fails fast (503) while every other channel keeps working.
import StarlingLoop

final class RedisNode {
    /// `host:port` as the cluster names it (or as the seed / --redis URL gives it).
    let address: String
    let commands: RedisConnection
    let subscriber: RedisSubscriber
    /// SSUBSCRIBE / SUNSUBSCRIBE sent on `subscriber` and not yet answered, oldest first: an
    /// error reply answers the oldest (Redis answers in order).
    var pendingSubscriptions: [(subscribe: Bool, channel: String)] = []
    /// The command connection has been up at least once.
    var everConnected = false

    /// `named`: roles carry the address (a cluster's nodes); one Redis keeps the plain roles.
    init(loop: EventLoop, url: RedisURL, named: Bool) {
        address = "\(url.host):\(url.port)"
        commands = RedisConnection(loop: loop, url: url, role: named ? "commands \(address)" : "commands")
        subscriber = RedisSubscriber(loop: loop, url: url, role: named ? "pubsub \(address)" : "pubsub")
    }

    var isUp: Bool { commands.isConnected && subscriber.isConnected }
}

/// A redirect a cluster node answered with: `MOVED <slot> <host:port>` or `ASK <slot> <host:port>`.
struct RedisRedirect: Equatable {
    enum Kind { case moved, ask }
    var kind: Kind
    var slot: Int
    var address: String

    init?(_ message: String) {
        // Every error reply passes here: only the two redirects are split into words.
        guard message.hasPrefix("MOVED ") || message.hasPrefix("ASK ") else { return nil }
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), slot >= 0, slot < RedisSlot.count else { return nil }
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        self.slot = slot
        address = String(parts[2])
    }
}

final class RedisShards {
    enum Topology { case single(RedisURL), cluster([RedisURL]) }

    let topology: Topology
    private let loop: EventLoop
    /// The URL new nodes inherit user and password from.
    private let template: RedisURL
    private(set) var nodes: [String: RedisNode] = [:]
    /// The master of each slot, as last learnt; nil: unknown or none.
    private var owners: [RedisNode?]
    private var refreshing = false
    private var refreshWanted = false
    private var lastRefreshMs: UInt64 = 0
    private var timer: LoopTimer?
    private(set) var askRedirects = 0
    private(set) var movedRedirects = 0

    var onCommandsUp: ((RedisNode) -> Void)?
    var onSubscriberUp: ((RedisNode) -> Void)?
    var onDisconnect: ((RedisNode, String, String, Bool) -> Void)?
    var onSubscriberDown: ((RedisNode) -> Void)?
    var onReply: ((RedisNode, RedisReply) -> Void)?
    /// A notification: the channel and the payload (RedisSubscriber.onMessage).
    var onMessage: ((String, ArraySlice<UInt8>) -> Void)?
    var onHandshakeError: ((String, String) -> Void)?
    /// The slot map changed: channels may have a new master.
    var onMapChanged: (() -> Void)?
    var onRefreshFailed: ((String) -> Void)?

    static let maxAttempts = 6
    static let periodicRefreshMs: UInt64 = 5_000
    static let unhealthyRefreshMs: UInt64 = 200

    init(loop: EventLoop, topology: Topology) {
        self.loop = loop
        self.topology = topology
        switch topology {
        case .single(let url):
            template = url
            owners = []
            let node = RedisNode(loop: loop, url: url, named: false)
            nodes[node.address] = node
            owners = Array(repeating: node, count: RedisSlot.count)
            wire(node)
        case .cluster(let seeds):
            precondition(!seeds.isEmpty, "a cluster needs at least one seed")
            template = seeds[0]
            owners = Array(repeating: nil, count: RedisSlot.count)
            for seed in seeds { _ = node(seed) }
        }
    }

    var isCluster: Bool { if case .cluster = topology { return true } else { return false } }

    func start() {
        for n in nodes.values { n.commands.start(); n.subscriber.start() }
        guard isCluster else { return }
        timer = loop.every(ms: 100) { [weak self] in self?.tick() }
        timer?.unref()
    }

    /// Every slot has a master whose two connections are up.
    var isReady: Bool {
        var seen = Set<ObjectIdentifier>()
        for owner in owners {
            guard let owner else { return false }
            if seen.insert(ObjectIdentifier(owner)).inserted, !owner.isUp { return false }
        }
        return true
    }

    func owner(of channel: String) -> RedisNode? { owners[slot(of: channel)] }

    /// One Redis holds every slot: no hashing per command there.
    private func slot(of channel: String) -> Int { isCluster ? RedisSlot.of(channel: channel) : 0 }

    // MARK: routing

    /// Sends `commands` for `channel` to its slot's master: one command alone, several as
    /// one MULTI/EXEC. `done` gets the reply (EXEC's for several) and the node that gave
    /// it, or nil when no master of the slot can be reached or the connection dropped.
    func send(_ channel: String, _ commands: [RedisCommand], _ done: @escaping (RedisReply?, RedisNode?) -> Void) {
        route(slot(of: channel), commands, attempt: 0, asking: nil, done)
    }

    private func route(_ slot: Int, _ commands: [RedisCommand], attempt: Int, asking: RedisNode?,
                       _ done: @escaping (RedisReply?, RedisNode?) -> Void) {
        guard let node = asking ?? owners[slot], node.commands.isConnected else {
            // A node we only just learnt of is still connecting; a slot without a master
            // (map still unknown) may get one at the next refresh. Anything else: fail fast.
            let fresh = isCluster && ((asking ?? owners[slot]).map { !$0.everConnected } ?? !refreshedOnce)
            if fresh, attempt < Self.maxAttempts {
                requestRefresh()
                return retryLater(slot, commands, attempt, asking, done)
            }
            if isCluster { requestRefresh() }
            return done(nil, nil)
        }
        let c = node.commands
        // Only a transaction needs to catch a redirect answering one of its queued commands.
        let redirect = commands.count > 1 ? RedirectCatcher() : nil
        let finish: (RedisReply?) -> Void = { [weak self] reply in
            guard let self else { return }
            let answer = redirect?.reply ?? reply
            guard let message = answer?.errorMessage, attempt < Self.maxAttempts else { return done(answer, node) }
            if let r = RedisRedirect(message) {
                switch r.kind {
                case .moved:
                    self.movedRedirects += 1
                    self.owners[r.slot] = self.node(address: r.address)
                    self.requestRefresh()
                    self.route(slot, commands, attempt: attempt + 1, asking: nil, done)
                case .ask:
                    self.askRedirects += 1
                    self.route(slot, commands, attempt: attempt + 1, asking: self.node(address: r.address), done)
                }
            } else if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") || Self.touchedMigratingKey(message) {
                self.retryLater(slot, commands, attempt, asking, done)
            } else {
                done(answer, node)
            }
        }
        if asking != nil { c.send(["ASKING"]) }
        let sent: Bool
        if commands.count == 1 {
            sent = c.send(commands[0], finish)
        } else {
            c.send(["MULTI"])
            for command in commands {
                // Inside MULTI a redirect answers the queued command and EXEC then aborts.
                c.send(command) { reply in
                    if let redirect, redirect.reply == nil, let m = reply?.errorMessage, RedisRedirect(m) != nil { redirect.reply = reply }
                }
            }
            sent = c.send(["EXEC"], finish)
        }
        if !sent { done(nil, nil) }
    }

    /// A script refused because it read a key missing on a MIGRATING slot's source (the
    /// key may be on the target): for a plain command that would be ASK. The publish script
    /// reads every key it may touch before its first write, so nothing was stored; once the
    /// slot's keys have moved the retry gets ASK.
    static func touchedMigratingKey(_ message: String) -> Bool {
        // A byte search: String.contains(String) builds a searcher per call (~46 k
        // instructions for each "no such key" a subscriber's first read gets, callgrind).
        let needle: StaticString = "Script attempted to access a non local key"
        let n = needle.utf8CodeUnitCount
        let hay = Array(message.utf8)
        guard hay.count >= n else { return false }
        for start in 0...(hay.count - n) {
            var k = 0
            while k < n, hay[start + k] == needle.utf8Start[k] { k += 1 }
            if k == n { return true }
        }
        return false
    }

    private func retryLater(_ slot: Int, _ commands: [RedisCommand], _ attempt: Int, _ asking: RedisNode?,
                            _ done: @escaping (RedisReply?, RedisNode?) -> Void) {
        _ = loop.after(ms: 25 << UInt64(attempt)) { [weak self] in
            self?.route(slot, commands, attempt: attempt + 1, asking: asking, done)
        }
    }

    private final class RedirectCatcher { var reply: RedisReply? }

    /// A subscriber connection was answered `MOVED` (the channel's slot is elsewhere).
    func subscriberRedirected(_ r: RedisRedirect) {
        if r.kind == .moved {
            movedRedirects += 1
            owners[r.slot] = node(address: r.address)
        }
        requestRefresh()
    }

    // MARK: nodes

    private func node(_ url: RedisURL) -> RedisNode {
        let address = "\(url.host):\(url.port)"
        if let n = nodes[address] { return n }
        let n = RedisNode(loop: loop, url: url, named: true)
        nodes[address] = n
        wire(n)
        if timer != nil { n.commands.start(); n.subscriber.start() }
        return n
    }

    private func node(address: String) -> RedisNode {
        var url = template
        if let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) {
            url.host = String(address[..<colon]).trimmingCharacters(in: "[]")
            url.port = port
        }
        url.db = 0
        return node(url)
    }

    private func wire(_ n: RedisNode) {
        n.commands.onConnect = { [weak self, unowned n] in
            n.everConnected = true
            self?.onCommandsUp?(n)
            self?.requestRefreshIfCluster()
        }
        n.commands.onDisconnect = { [weak self, unowned n] reason, dropped in
            self?.onDisconnect?(n, n.commands.role, reason, dropped)
            if dropped { self?.requestRefreshIfCluster() }
        }
        n.subscriber.onConnect = { [weak self, unowned n] in
            n.pendingSubscriptions.removeAll()
            self?.onSubscriberUp?(n)
        }
        n.subscriber.onDisconnect = { [weak self, unowned n] reason, dropped in
            n.pendingSubscriptions.removeAll()
            self?.onSubscriberDown?(n)
            self?.onDisconnect?(n, n.subscriber.role, reason, dropped)
        }
        n.subscriber.onReply = { [weak self, unowned n] reply in self?.onReply?(n, reply) }
        n.subscriber.onMessage = { [weak self] channel, payload in self?.onMessage?(channel, payload) }
        n.commands.onHandshakeError = { [weak self, unowned n] m in self?.onHandshakeError?(n.commands.role, m) }
        n.subscriber.onHandshakeError = { [weak self, unowned n] m in self?.onHandshakeError?(n.subscriber.role, m) }
    }

    // MARK: the slot map

    private var refreshedOnce = false

    private func requestRefreshIfCluster() { if isCluster { requestRefresh() } }

    func requestRefresh() {
        guard isCluster else { return }
        refreshWanted = true
        if !refreshing, loop.nowMs >= lastRefreshMs + 50 { refresh() }
    }

    private func tick() {
        let now = loop.nowMs
        guard !refreshing else { return }
        if refreshWanted || now >= lastRefreshMs + Self.periodicRefreshMs
            || (!isReady && now >= lastRefreshMs + Self.unhealthyRefreshMs) {
            refresh()
        }
    }

    /// Asks one connected node (a random one: a node cut off from the majority must not
    /// be the only voice) for CLUSTER SLOTS.
    private func refresh() {
        guard let asked = nodes.values.filter({ $0.commands.isConnected }).randomElement() else { return }
        refreshing = true
        refreshWanted = false
        lastRefreshMs = loop.nowMs
        let sent = asked.commands.send(["CLUSTER", "SLOTS"]) { [weak self] reply in
            guard let self else { return }
            self.refreshing = false
            guard let reply, let map = Self.slotMap(reply, askedHost: asked.commands.url.host) else {
                self.refreshWanted = true
                self.onRefreshFailed?("\(asked.address) answered CLUSTER SLOTS with \(reply?.errorMessage ?? "nothing")")
                return
            }
            self.apply(map)
        }
        if !sent { refreshing = false }
    }

    private func apply(_ map: [(ClosedRange<Int>, String)]) {
        var next = [RedisNode?](repeating: nil, count: RedisSlot.count)
        for (range, address) in map {
            let n = node(address: address)
            for slot in range { next[slot] = n }
        }
        refreshedOnce = true
        var changed = false
        for slot in 0..<RedisSlot.count where next[slot] !== owners[slot] { changed = true; break }
        owners = next
        if changed { onMapChanged?() }
    }

    /// CLUSTER SLOTS: `[[start, end, [host, port, id, …], replica…], …]`; the master's
    /// address for each range. An empty host means the node that answered.
    static func slotMap(_ reply: RedisReply, askedHost: String) -> [(ClosedRange<Int>, String)]? {
        guard let ranges = reply.elements else { return nil }
        var out: [(ClosedRange<Int>, String)] = []
        for r in ranges {
            guard let e = r.elements, e.count >= 3, case .integer(let a) = e[0], case .integer(let b) = e[1],
                  a >= 0, b >= a, b < RedisSlot.count, let master = e[2].elements, master.count >= 2,
                  case .integer(let port) = master[1] else { return nil }
            var host = master[0].text ?? ""
            if host.isEmpty || host == "?" { host = askedHost }
            out.append((Int(a)...Int(b), host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"))
        }
        return out
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
