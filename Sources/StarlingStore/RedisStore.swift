// RedisStore: the Redis streams engine (SPEC §6). One stream per channel (`starling:{ch}`),
// published by one EVALSHA of ops/redis/publish.lua, replayed by XRANGE, fanned in from
// every node through the script's SPUBLISH (sharded pub/sub). One Redis and a Redis Cluster
// are the same engine: RedisShards routes each channel's commands to its slot's master
// (one node holding every slot, for one Redis), and each node has two connections on the
// broker's loop: `commands` (hiredis, pipelined) and a sharded pub/sub one (SSUBSCRIBE only
// to channels with local subscribers, on the master of their slot).
//
// Invariant per watched channel: events reach the delegate in strictly increasing ID
// order with no hole. `lastDelivered` is the newest ID handed over; a notification is
// applied only when its previous-ID equals it, anything else (a lost notification, a
// reconnect, a quiet channel on the periodic check) is filled from the stream by
// XRANGE (lastDelivered +, and notifications that arrive meanwhile wait in `held`.
import Logging
import StarlingCore
import StarlingLoop

public final class RedisStore: EventStore {
    /// A channel with local subscribers.
    final class Watch {
        /// The delegate's record of the channel (`setListener`), handed back with deliveries.
        var listener: AnyObject?
        /// Newest ID delivered; nil until the baseline (the stream's newest entry when the
        /// watch began, read before the first subscriber's replay) is known.
        var lastDelivered: EventID?
        var baselinePending = false
        var filling = false
        /// Notifications that arrived before the baseline or during a fill.
        var held: [RedisNotification] = []
        var heldOverflow = false
        /// Events of the channel carry a lease (`l`): the periodic check asks the script to
        /// end it if the lease ran out. Cleared never; checking stops once `ended`.
        var leased = false
        /// The channel's final event has been delivered (or was its newest at the baseline).
        var ended = false
        /// The newest stretch of the stream, in memory: replays inside it read no Redis.
        var tail = RedisTail()
        /// Replay reads sent to Redis for this channel, by resume point and page size, with
        /// the identical reads that arrived meanwhile: those share the answer (concurrent
        /// replays of one channel read Redis once).
        var loading: [String: [(Result<ReadResult, BrokerError>) -> Void]] = [:]
        /// A notification chained onto `lastDelivered` since the last periodic check: the
        /// channel is provably current up to it, so that check reads nothing.
        var chainedSinceCheck = false
        /// The periodic check of a quiet channel: every `checkEvery` ticks, doubling (up to
        /// `maxCheckEvery`) while checks find nothing the notifications missed.
        var checkEvery = 1
        var nextCheckTick = 0
    }

    /// Where a channel's sharded subscription stands, and on which node. A channel is never
    /// SSUBSCRIBEd while its SUNSUBSCRIBE is unconfirmed, so confirmations pair up.
    enum Subscription { case subscribing, subscribed, unsubscribing }
    struct ShardSubscription {
        let node: RedisNode
        var state: Subscription
    }

    // unowned(unsafe): as MemoryStore.delegate.
    public unowned(unsafe) var delegate: EventStoreDelegate?
    public var isReady: Bool { shards.isReady }
    /// Periodic checks so far; a quiet channel is read again at most this many apart.
    private var ticks = 0
    static let maxCheckEvery = 4
    public var channelCount: Int? { nil }

    private let loop: EventLoop
    /// What logs name: the --redis URL or the cluster's seeds.
    private let name: String
    private let shards: RedisShards
    /// `--redis-wait N`: a publish is answered 200 only once WAIT N confirms N replicas.
    private let waitReplicas: Int
    private let waitTimeoutMs: Int
    private let retainEvents: Int
    private let retainSeconds: Int
    private let logger: Logger
    private var scriptSHA: String?
    /// The publishes of this loop turn not yet sent: with one Redis they leave as one
    /// `batch` call of the script when the turn ends (or before any other command, so
    /// nothing overtakes them). Nil with a cluster, whose keys of one call must share a slot.
    private var batch: PublishBatch?
    private let batching: Bool
    /// A batch is sent at once when it holds this many publishes (Redis runs a call whole,
    /// blocking every other client meanwhile).
    static let maxBatch = 64
    /// … or this many bytes of arguments (a few large publishes go alone, not held for the turn).
    static let maxBatchBytes = 256 * 1024
    /// `--redis-pace`: least nanoseconds between two batches sent (0: every turn's at its end).
    /// Why: at 20,000 publishes/s over 2,000 channels a turn held 2-3 publishes, and each call
    /// cost Redis a wake-up, a read, two writes and the script's entry far above the events'
    /// own work (and the broker a wake-up per reply): one call a millisecond carries ~20 and
    /// takes ~40 % off the CPU per event, Redis's and the broker's (docs/benchmarks.md).
    private let paceNs: UInt64
    /// When the last batch left; a batch due sooner waits at the turn's end for the pace.
    private var lastBatchNs: UInt64 = 0
    /// Sends a held batch when its pace is up, should no turn end after that sooner.
    private var paceTimer: LoopTimer?
    /// A publish in the batch has a client waiting on it alone (`expedite`).
    private var expedited = false
    public var paceMs: UInt64 { EventLoop.wholeMs(ns: paceNs) }
    /// (Nothing held: a batch that filled up has just left with the publish; nothing to hurry.)
    public func expedite() { if batch != nil { expedited = true } }
    private var watches: [String: Watch] = [:]
    private var subscriptions: [String: ShardSubscription] = [:]
    private var counters = StoreStats()
    public var stats: StoreStats {
        var s = counters
        s.askRedirects = shards.askRedirects
        s.movedRedirects = shards.movedRedirects
        return s
    }
    private var lastRefreshFailure = ""
    private var lastRefreshFailureLogMs: UInt64 = 0
    /// Roles whose connection has been up once: the next "up" is a reconnect.
    private var everConnected: Set<String> = []

    static let fillPageSize = 512
    /// Replay reads of a watched channel fetch this many entries from Redis at least (the
    /// rest stays in the tail for the next pages and for other subscribers).
    static let tailLoadPageSize = 8192
    /// Bumped whenever the tails are dropped: a reply to a read sent before must not
    /// anchor a tail again (it may describe history the reset distrusts).
    private var tailEpoch = 0
    static let maxHeldNotifications = 4096

    public convenience init(loop: EventLoop, url: RedisURL, retainEvents: Int, retainSeconds: Int, logger: Logger) {
        self.init(loop: loop, redis: .single(url), retainEvents: retainEvents, retainSeconds: retainSeconds, logger: logger)
    }

    /// `redis`: one Redis, or a cluster's seed nodes. `waitReplicas` > 0 makes every
    /// publish wait (WAIT, at most `waitTimeoutMs`) for that many replicas to have it.
    public init(loop: EventLoop, redis: RedisTopology, waitReplicas: Int = 0, waitTimeoutMs: Int = 1_000,
                paceNs: UInt64 = 0, retainEvents: Int, retainSeconds: Int, logger: Logger) {
        self.loop = loop
        switch redis {
        case .single(let url): name = "\(url)"; shards = RedisShards(loop: loop, topology: .single(url))
        case .cluster(let seeds): name = seeds.map { "\($0)" }.joined(separator: ","); shards = RedisShards(loop: loop, topology: .cluster(seeds))
        }
        self.waitReplicas = max(0, waitReplicas)
        self.waitTimeoutMs = max(1, waitTimeoutMs)
        self.retainEvents = max(1, retainEvents)
        self.retainSeconds = max(1, retainSeconds)
        self.logger = logger
        batching = !shards.isCluster
        self.paceNs = batching ? paceNs : 0
        shards.onCommandsUp = { [unowned self] node in connectionUp(node.commands.role); commandsConnected(node) }
        shards.onSubscriberUp = { [unowned self] node in connectionUp(node.subscriber.role); subscriberConnected(node) }
        shards.onSubscriberDown = { [unowned self] node in
            for (channel, s) in subscriptions where s.node === node { subscriptions[channel] = nil }
        }
        shards.onDisconnect = { [unowned self] _, role, reason, dropped in connectionDown(role, reason, dropped) }
        shards.onHandshakeError = { [unowned self] role, message in
            counters.commandErrors += 1
            logger.error("redis refused the handshake", metadata: [
                "event": "redis_auth_failed", "redis": "\(name)", "connection": "\(role)", "error": "\(message)"])
        }
        shards.onReply = { [unowned self] node, reply in received(reply, from: node) }
        shards.onMessage = { [unowned self] channel, payload in notified(channel, payload) }
        shards.onMapChanged = { [unowned self] in
            logger.notice("redis cluster slot map changed", metadata: ["event": "redis_slots_changed", "redis": "\(name)"])
            dropTails()  // a failover may have lost writes whose IDs the new master reuses
            for channel in watches.keys { reconcile(channel) }
        }
        shards.onRefreshFailed = { [unowned self] why in
            // Retried every 200 ms while it fails: one line per new reason, else one a minute.
            let now = loop.nowMs
            guard why != lastRefreshFailure || now >= lastRefreshFailureLogMs + 60_000 else { return }
            lastRefreshFailure = why
            lastRefreshFailureLogMs = now
            logger.warning("redis cluster slot map not refreshed: \(why)", metadata: ["event": "redis_slots_refresh_failed"])
        }
    }

    /// Opens every node's connections (they keep reconnecting on their own from then on).
    public func start() {
        if batching { loop.onEveryTurn { [unowned self] in turnEnded() } }
        shards.start()
    }

    /// Runs the loop until every slot has a master with both connections up, or `timeoutMs` passes; used once at
    /// start-up so the broker does not answer 503 to its first requests.
    public func waitUntilReady(timeoutMs: UInt64) -> Bool {
        let deadline = WallClock.nowMs() + timeoutMs
        while !isReady, WallClock.nowMs() < deadline { loop.runOnce() }
        return isReady
    }

    // MARK: connections

    /// One log line per connect, loss and reconnect (failed attempts only at debug).
    private func connectionUp(_ role: String) {
        let again = !everConnected.insert(role).inserted
        if again { counters.reconnects += 1 }
        logger.notice(again ? "redis reconnected" : "redis connected", metadata: [
            "event": again ? "redis_reconnected" : "redis_connected", "redis": "\(name)", "connection": "\(role)"])
    }

    private func connectionDown(_ role: String, _ reason: String, _ dropped: Bool) {
        logger.log(level: dropped ? .warning : .debug, dropped ? "redis disconnected" : "redis connect failed", metadata: [
            "event": dropped ? "redis_disconnected" : "redis_connect_failed", "redis": "\(name)", "connection": "\(role)",
            "reason": "\(reason)"])
    }

    private func commandsConnected(_ node: RedisNode) {
        // A (re)connected Redis may have restarted empty or be a promoted replica that
        // missed writes: nothing in memory is trusted until Redis is read again.
        dropTails()
        // Queued before anything else on this connection, so EVALSHA behind it finds the
        // script even on a Redis that restarted empty.
        node.commands.send(["SCRIPT", "LOAD", RedisPublishScript.source]) { [weak self] reply in
            guard let self, let reply else { return }
            if let sha = reply.text { self.scriptSHA = sha } else {
                self.counters.commandErrors += 1
                self.logger.error("redis SCRIPT LOAD failed: \(reply.errorMessage ?? "\(reply)")")
            }
        }
        // Whatever was published while we were away is in the streams.
        for (channel, w) in watches where shards.owner(of: channel) === node { catchUp(channel, w) }
    }

    private func subscriberConnected(_ node: RedisNode) {
        for (channel, s) in subscriptions where s.node === node { subscriptions[channel] = nil }
        for channel in watches.keys where shards.owner(of: channel) === node { reconcile(channel) }
    }

    // MARK: EventStore

    public func append(_ drafts: [EventDraft], to channel: String,
                       completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        if let k = drafts.firstIndex(where: { $0.final }), k != drafts.count - 1 {
            return completion(.failure(BrokerError(.badRequest, "bad_event", "event [\(k + 1)]: follows the final event")))
        }
        guard !drafts.isEmpty else { return completion(.success(.nothingStored(duplicates: 0))) }
        let leaseMs = drafts.last(where: { $0.leaseMs != nil })?.leaseMs
        if batching {
            // Room for a few publishes like this one; the buffer doubles past that.
            if batch == nil { batch = PublishBatch(capacity: 4 * RedisCodec.publishArgumentBytes(drafts)) }
            batch!.add(channel, drafts, leaseMs: leaseMs, completion)
            if batch!.count >= Self.maxBatch || batch!.arguments.byteCount >= Self.maxBatchBytes { flushBatch() }
            return
        }
        var command = scriptCommand(channel, capacity: RedisCodec.publishArgumentBytes(drafts))
        if let leaseMs {
            command.add("lease" as StaticString)
            command.add(String(leaseMs))
        }
        command.add(retainEvents)
        command.add(retainSeconds)
        RedisCodec.addPublishArguments(drafts, to: &command)
        runScript(channel, command) { [weak self] reply, node in
            self?.published(reply, node, channel, events: drafts.count, completion)
        }
    }

    /// A turn's end sends the batch, unless the pace says to wait: then a later turn's end
    /// or the timer does, whichever comes first. A publish after a quiet spell leaves at once.
    private func turnEnded() {
        guard batch != nil else { return }
        if paceNs > 0, !expedited {
            let now = loop.nowNs
            let due = lastBatchNs &+ paceNs
            if now < due {
                if paceTimer == nil {
                    // libuv's timers count whole milliseconds: a shorter pace waits for a
                    // turn's end (busy loops turn often) or for the next millisecond.
                    let ms = max(1, EventLoop.wholeMs(ns: due - now))
                    paceTimer = loop.after(ms: ms) { [unowned self] in paceTimer = nil; flushBatch() }
                }
                return
            }
        }
        flushBatch()
    }

    /// Sends this turn's publishes as one call: `EVALSHA <sha> <n> <keys> batch checked
    /// <retention> <calls>`; each publish gets its own element of the reply.
    private func flushBatch() {
        guard let b = batch else { return }
        batch = nil
        if paceNs > 0 {
            lastBatchNs = loop.nowNs
            expedited = false
            paceTimer?.cancel()
            paceTimer = nil
        }
        var command = scriptCommand(keys: b.channels, capacity: b.arguments.byteCount + 96)
        command.add("batch" as StaticString)
        command.add("checked" as StaticString)
        command.add(retainEvents)
        command.add(retainSeconds)
        command.add(argumentsOf: b.arguments)
        runScript(b.channels[0], command) { [weak self] reply, node in
            guard let self else { return }
            if case .array(let items)? = reply, items.count == b.channels.count {
                for k in items.indices { self.published(items[k], node, b.channels[k], events: b.events[k], b.completions[k].done) }
            } else {
                // No answer, or one for the whole call (LOADING, OOM, BUSY …): each publish hears it.
                for k in b.channels.indices { self.published(reply, node, b.channels[k], events: b.events[k], b.completions[k].done) }
            }
        }
    }

    /// One publish's reply from the script: its IDs, or the refusal it names.
    private func published(_ reply: RedisReply?, _ node: RedisNode?, _ channel: String, events: Int,
                           _ completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        guard let reply else {
            counters.commandErrors += 1
            return completion(.failure(BrokerError(.unavailable, "store_unavailable",
                "the Redis connection dropped before the batch was acknowledged; retry (with producer/seq to be safe)")))
        }
        switch reply {
        case .array(let items) where items.count == events:
            stored(items, node, channel, completion)
        case .bulk where events == 1:
            // A batch answers a one-event publish with its ID alone, not in an array of one.
            stored(CollectionOfOne(reply), node, channel, completion)
        case .error(let message) where Self.endedState(message) != nil:
            completion(.failure(Self.endedState(message)!.refusal(channel: channel)))
        case .error(let message) where message.hasPrefix("SEQGAP") || message.hasPrefix("FENCED"):
            completion(.failure(RedisCodec.producerError(message)))
        case .error(let message) where message.hasPrefix("ERR starling:"):
            completion(.failure(BrokerError(.badRequest, "bad_event", String(message.dropFirst("ERR starling: ".count)))))
        default:
            // LOADING, OOM, READONLY, BUSY …: Redis cannot take it now.
            counters.commandErrors += 1
            logger.warning("redis publish to \(channel) failed: \(reply.errorMessage ?? "\(reply)")")
            completion(.failure(BrokerError(.unavailable, "store_unavailable",
                "Redis refused the publish: \(reply.errorMessage ?? "unexpected reply")")))
        }
    }

    /// A publish stored: `ids` has one ID per event, "" for a producer repeat. Only the IDs:
    /// subscribers get the events from the notification.
    private func stored<IDs: Collection<RedisReply>>(_ ids: IDs, _ node: RedisNode?, _ channel: String,
                                                     _ completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        var first: EventID?, last: EventID?
        var count = 0
        for item in ids {
            // The ID's bytes, read in place (no String per ID).
            guard case .bulk(let b) = item, !b.isEmpty, let id = EventID(bytes: b) else { continue }
            if first == nil { first = id }
            last = id
            count += 1
        }
        let result = AppendResult(count: count, first: first, last: last, duplicates: ids.count - count)
        guard waitReplicas > 0, count > 0, let node else { return completion(.success(result)) }
        awaitReplicas(node, channel) { refusal in completion(refusal.map { .failure($0) } ?? .success(result)) }
    }

    /// `--redis-wait N`: WAIT on the connection that ran the script (WAIT counts the
    /// replicas that have every write of that connection so far). `done` gets nil once N
    /// replicas confirm, else the 503 to answer: the event is stored on the master and may
    /// be delivered, but a failover now could lose it, so the publisher is told to retry
    /// (with producer/seq, which makes the retry a duplicate rather than a second copy).
    private func awaitReplicas(_ node: RedisNode, _ channel: String, _ done: @escaping (BrokerError?) -> Void) {
        let sent = node.commands.send(RedisCommand("WAIT", String(waitReplicas), String(waitTimeoutMs))) { [weak self] reply in
            guard let self else { return }
            if case .integer(let n)? = reply, n >= Int64(self.waitReplicas) { return done(nil) }
            self.counters.commandErrors += 1
            let got: String
            if case .integer(let n)? = reply { got = "\(n)" } else { got = reply?.errorMessage ?? "no answer" }
            self.logger.warning("redis WAIT \(self.waitReplicas) for \(channel): \(got)", metadata: ["event": "redis_wait_short"])
            done(BrokerError(.unavailable, "replicas_unconfirmed",
                "stored on the master but \(got) of \(self.waitReplicas) replicas confirmed it within \(self.waitTimeoutMs) ms; retry (with producer/seq to be safe)"))
        }
        if !sent { done(BrokerError(.unavailable, "replicas_unconfirmed", "the Redis connection dropped before WAIT answered; retry (with producer/seq to be safe)")) }
    }

    /// `EVALSHA <sha> 1 starling:{channel}` (EVAL and the script's text until SCRIPT LOAD
    /// has answered), to which the caller adds the script's ARGV.
    private func scriptCommand(_ channel: String, capacity: Int) -> RedisCommand {
        var command = scriptCommand(keys: [channel], capacity: capacity)
        // The broker checked the channel, names, kinds, JSON, the final event's place (above,
        // in append) and the seqs before it calls: the script skips those checks.
        command.add("checked" as StaticString)
        return command
    }

    /// `EVALSHA <sha> <n> <the channels' keys>` (EVAL and the text until SCRIPT LOAD answered).
    private func scriptCommand(keys channels: [String], capacity: Int) -> RedisCommand {
        var command: RedisCommand
        let keyBytes = channels.reduce(0) { $0 + $1.utf8.count + 40 }
        if let sha = scriptSHA {
            command = RedisCommand(capacity: capacity + 96 + keyBytes)
            command.add("EVALSHA" as StaticString)
            command.add(sha)
        } else {
            command = RedisCommand(capacity: capacity + 64 + keyBytes + RedisPublishScript.source.utf8.count)
            command.add("EVAL" as StaticString)
            command.add(RedisPublishScript.source)
        }
        command.add(channels.count)
        for channel in channels { RedisKeys.addStream(channel, to: &command) }
        return command
    }

    /// Runs ops/redis/publish.lua (`command`, from `scriptCommand`) on `channel`'s slot's
    /// master; `done` gets the reply and the node that ran it, or nil if no master of the
    /// slot can be reached or the connection dropped before it answered.
    private func runScript(_ channel: String, _ command: RedisCommand, retried: Bool = false, _ done: @escaping (RedisReply?, RedisNode?) -> Void) {
        send(channel, [command]) { [weak self] reply, node in
            guard let self else { return }
            if case .error(let message)? = reply, message.hasPrefix("NOSCRIPT"), !retried {
                // The script cache was flushed: EVAL carries the text and caches it again.
                self.scriptSHA = nil
                return self.runScript(channel, command.replacingHead(2, with: ["EVAL", RedisPublishScript.source]), retried: true, done)
            }
            done(reply, node)
        }
    }

    /// Every command goes through here: the publishes waiting for the turn's end leave first,
    /// so no later command (a Stop, a read after a publish) overtakes them.
    private func send(_ channel: String, _ commands: [RedisCommand], _ done: @escaping (RedisReply?, RedisNode?) -> Void) {
        flushBatch()
        shards.send(channel, commands, done)
    }

    /// The end state a script error names (`FINAL`, `CANCELLED`, `ABANDONED starling: …`).
    static func endedState(_ message: String) -> ChannelState? {
        if message.hasPrefix("FINAL starling:") { return .final }
        if message.hasPrefix("CANCELLED starling:") { return .cancelled }
        if message.hasPrefix("ABANDONED starling:") { return .abandoned }
        return nil
    }

    /// The script's form for the broker's own calls: `<form> <retain-events> <retain-seconds> …`.
    private func lifecycleCommand(_ channel: String, _ form: String, _ extra: [String] = []) -> RedisCommand {
        var command = scriptCommand(channel, capacity: 64 + extra.reduce(0) { $0 + $1.utf8.count + 16 })
        command.add(form)
        command.add(retainEvents)
        command.add(retainSeconds)
        for e in extra { command.add(e) }
        return command
    }

    public func cancel(_ channel: String, data: String, completion: @escaping (Result<StoredEvent, BrokerError>) -> Void) {
        runScript(channel, lifecycleCommand(channel, "cancel", [data])) { [weak self] reply, node in
            guard let self else { return }
            switch reply {
            case .error(let message)? where Self.endedState(message) != nil:
                completion(.failure(Self.endedState(message)!.refusal(channel: channel)))
            case let r? where r.text.flatMap({ EventID($0) }) != nil:
                let id = EventID(r.text!)!
                let cancelled = StoredEvent(channel: channel, id: id, name: ChannelState.cancelledEvent, data: .json(data),
                                            conflate: nil, final: true, storedAtMs: id.ms)
                // A cancel is a stored event too: with --redis-wait, 200 only once replicas have it.
                guard self.waitReplicas > 0, let node else { return completion(.success(cancelled)) }
                self.awaitReplicas(node, channel) { refusal in completion(refusal.map { .failure($0) } ?? .success(cancelled)) }
            default:
                self.logger.warning("redis cancel of \(channel) failed: \(reply?.errorMessage ?? "connection lost")")
                completion(.failure(BrokerError(.unavailable, "store_unavailable",
                    "Redis did not take the cancel: \(reply?.errorMessage ?? "connection lost")")))
            }
        }
    }

    public func holdLease(_ channel: String) {
        // Unreachable: the next hold, after the reconnect, renews it.
        runScript(channel, lifecycleCommand(channel, "hold")) { _, _ in }
    }

    /// Ends `channel` as abandoned if its lease ran out: the script does it once, whichever
    /// node asks first; the `starling.abandoned` event then arrives as a notification.
    private func checkLease(_ channel: String) {
        runScript(channel, lifecycleCommand(channel, "lapse")) { _, _ in }
    }

    public func read(_ channel: String, from: ResumePoint, limit: Int,
                     completion: @escaping (Result<ReadResult, BrokerError>) -> Void) {
        let key = RedisKeys.stream(channel)
        let start: String
        switch from {
        case .live:
            // Only the final state matters: nothing is replayed.
            send(channel, [RedisCommand("XINFO", "STREAM", key)]) { reply, _ in
                guard let reply else { return completion(.failure(Self.unreachable)) }
                let info = RedisCodec.streamInfo(reply, channel: channel)
                completion(.success(ReadResult(events: [], gap: nil, reachedEnd: true, finalID: Self.finalID(info),
                                               lastID: Self.lastID(info))))
            }
            return
        case .earliest: start = "-"
        case .after(let id): start = "(\(id)"
        }
        let page = max(1, limit)
        var fetch = page
        // A watched channel: its tail answers what it holds; the same read already on its
        // way to Redis is joined rather than sent again; a read Redis answers fetches a
        // larger page, kept in the tail for the next pages and the other subscribers.
        let w = watches[channel]
        let joinKey = "\(start) \(page)"
        if let w {
            trimTail(w, nowMs: WallClock.nowMs())
            if let served = w.tail.page(from: from, limit: page) { return completion(.success(served)) }
            if w.loading[joinKey] != nil { w.loading[joinKey]!.append(completion); return }
            w.loading[joinKey] = []
            fetch = max(page, Self.tailLoadPageSize)
        }
        let epoch = tailEpoch
        // MULTI/EXEC: the history facts (XINFO) and the page (XRANGE) describe one instant,
        // so a trim between them can neither fake nor hide a gap. One more entry than the
        // page tells whether the page reaches the end.
        let commands = [RedisCommand("XINFO", "STREAM", key), RedisCommand("XRANGE", key, start, "+", "COUNT", String(fetch + 1))]
        send(channel, commands) { [weak self] reply, _ in
            // Everyone who joined this read gets its answer (even if the watch ended meanwhile).
            let joined = w?.loading.removeValue(forKey: joinKey) ?? []
            let result: Result<ReadResult, BrokerError>
            if let parts = reply?.elements, parts.count == 2, let entries = RedisCodec.events(parts[1], channel: channel) {
                let info = RedisCodec.streamInfo(parts[0], channel: channel)
                let events = Array(entries.prefix(page))
                var gap: Gap?
                if case .after(let id) = from {
                    gap = Self.gap(after: id, info: info, resumedFrom: events.first?.id)
                }
                if let self, let w, self.watches[channel] === w, epoch == self.tailEpoch {
                    self.remember(entries, from: from, info: info, gap: gap, in: w)
                }
                result = .success(ReadResult(events: events, gap: gap, reachedEnd: entries.count <= page, finalID: Self.finalID(info),
                                             lastID: Self.lastID(info)))
            } else {
                self?.counters.commandErrors += 1
                result = .failure(BrokerError(.unavailable, "store_unavailable",
                    "Redis did not answer the read: \(reply?.errorMessage ?? "connection lost")"))
            }
            completion(result)
            for c in joined { c(result) }
        }
    }

    // MARK: the in-memory tail (RedisTail.swift says why it is exact)

    /// Keeps `entries`, the page Redis answered for a read from `from`, in the channel's
    /// tail when they are the stream's exact successors of the resume point (no gap).
    private func remember(_ entries: [StoredEvent], from: ResumePoint, info: RedisStreamInfo?, gap: Gap?, in w: Watch) {
        // The stream is gone, or its IDs went back (recreated, or a Redis that lost
        // writes): what the tail holds is not this stream's history.
        guard let info, info.lastGeneratedID >= w.tail.last else { return w.tail.reset() }
        guard gap == nil else { return }
        switch from {
        case .earliest: w.tail.take(entries, after: .zero, fromStart: true, anchoring: true)
        case .after(let id): w.tail.take(entries, after: id, fromStart: false, anchoring: true)
        case .live: return
        }
        trimTail(w, nowMs: WallClock.nowMs())
    }

    /// The tail keeps what the script keeps: at most `--retain-events`, none older than
    /// `--retain-seconds` (so an expired key's events are not served from memory).
    private func trimTail(_ w: Watch, nowMs: UInt64) {
        let age = UInt64(retainSeconds) * 1000
        w.tail.trim(maxCount: retainEvents, minMs: nowMs > age ? nowMs - age : 0)
    }

    /// After a reconnect or a slot map change: Redis may not hold what the tails hold.
    private func dropTails() {
        tailEpoch &+= 1
        for w in watches.values { w.tail.reset() }
    }

    public func info(_ channel: String, completion: @escaping (Result<ChannelInfo, BrokerError>) -> Void) {
        send(channel, [RedisCommand("XINFO", "STREAM", RedisKeys.stream(channel))]) { reply, _ in
            guard let reply else { return completion(.failure(Self.unreachable)) }
            guard let info = RedisCodec.streamInfo(reply, channel: channel) else {
                // "no such key": a channel never published, or expired.
                return completion(.success(ChannelInfo(lastID: nil, length: 0, state: .open)))
            }
            let state = info.last.map { $0.final ? ChannelState(finalEventNamed: $0.name) : .open } ?? .open
            completion(.success(ChannelInfo(lastID: Self.lastID(info), length: info.length, state: state)))
        }
    }

    public func watch(_ channel: String) {
        guard watches[channel] == nil else { return }
        let w = Watch()
        watches[channel] = w
        // The baseline goes out now, before the first subscriber's read on the same
        // connection: anything newer than it is delivered, so nothing between the read
        // and the SUBSCRIBE taking effect can be missed.
        requestBaseline(channel, w)
        reconcile(channel)
    }

    /// Kept on the channel's watch (the broker sets it after `watch`, drops it before `unwatch`).
    public func setListener(_ listener: AnyObject?, for channel: String) {
        watches[channel]?.listener = listener
    }

    public func unwatch(_ channel: String) {
        guard watches.removeValue(forKey: channel) != nil else { return }
        reconcile(channel)
    }

    /// The periodic check (every ~500 ms): a quiet channel whose last notification was lost
    /// has no next one to reveal the hole, so compare it with its stream. A channel that had
    /// a notification chain onto what it delivered since the last check is current up to
    /// it and is not read; a quiet one is read at once, then less often while the reads
    /// find nothing new (1, 2, 4 ticks: a lost notification is delivered within ~2.5 s).
    /// Reading every watched channel every tick cost two XRANGEs per channel per second,
    /// more than the publishes themselves at 2,000 channels (docs/benchmarks.md).
    public func tick(nowMs: UInt64) {
        ticks += 1
        for (channel, w) in watches {
            if w.lastDelivered == nil {
                requestBaseline(channel, w)
            } else if w.chainedSinceCheck {
                w.chainedSinceCheck = false
            } else if ticks >= w.nextCheckTick {
                fill(channel, w)
                w.nextCheckTick = ticks + w.checkEvery
                w.checkEvery = min(2 * w.checkEvery, Self.maxCheckEvery)
            }
            reconcile(channel)
            if w.leased, !w.ended, shards.owner(of: channel)?.commands.isConnected == true { checkLease(channel) }
        }
    }

    // MARK: gap rules

    static let unreachable = BrokerError(.unavailable, "store_unavailable", "Redis cannot be reached")

    /// The channel's newest ID: its last entry, else the last one it ever generated.
    static func lastID(_ info: RedisStreamInfo?) -> EventID? {
        guard let info else { return nil }
        return info.last?.id ?? (info.lastGeneratedID == .zero ? nil : info.lastGeneratedID)
    }

    static func finalID(_ info: RedisStreamInfo?) -> EventID? {
        guard let last = info?.last, last.final else { return nil }
        return last.id
    }

    /// Whether history after `requested` is gone. `info` is nil when the key is missing:
    /// the stream expired, was deleted, or Redis restarted without it. Otherwise entries
    /// were removed after `requested` (max-deleted-entry-id above it), or `requested`
    /// predates a stream that never held it (a recreated stream: its first entry is newer
    /// and nothing was deleted up to `requested`), or `requested` is past every ID the
    /// stream ever made (a stream recreated since, or an ID from elsewhere).
    static func gap(after requested: EventID, info: RedisStreamInfo?, resumedFrom: EventID?) -> Gap? {
        guard let info else { return Gap(requested: requested, resumedFrom: resumedFrom) }
        if let f = finalID(info), requested >= f { return nil }
        var lost = requested < info.maxDeletedID || requested > info.lastGeneratedID
        if !lost, let first = info.firstID, requested < first, requested != info.maxDeletedID { lost = true }
        return lost ? Gap(requested: requested, resumedFrom: resumedFrom) : nil
    }

    // MARK: live delivery

    private func requestBaseline(_ channel: String, _ w: Watch) {
        guard w.lastDelivered == nil, !w.baselinePending else { return }
        w.baselinePending = true
        let epoch = tailEpoch
        send(channel, [RedisCommand("XREVRANGE", RedisKeys.stream(channel), "+", "-", "COUNT", "1")]) { [weak self] reply, _ in
            guard let self, self.watches[channel] === w else { return }
            w.baselinePending = false
            guard let reply else { return }  // retried on reconnect
            let newest = reply.elements?.first
            w.lastDelivered = newest?.elements?.first?.text.flatMap { EventID($0) } ?? .zero
            // The newest entry now: the notifications that follow it chain from it. An
            // empty or missing stream (.zero): whatever comes is the stream from its start.
            if epoch == self.tailEpoch, let base = w.lastDelivered {
                w.tail.take([], after: base, fromStart: base == .zero, anchoring: true)
            }
            if let newest {
                w.leased = w.leased || RedisCodec.isLeased(newest)
                w.ended = RedisCodec.event(newest, channel: channel)?.final ?? false
            }
            self.fill(channel, w)
        }
    }

    private func catchUp(_ channel: String, _ w: Watch) {
        if w.lastDelivered == nil { requestBaseline(channel, w) } else { fill(channel, w) }
    }

    /// Delivers what the stream holds after `lastDelivered`, page by page, then the held
    /// notifications that are still news.
    private func fill(_ channel: String, _ w: Watch) {
        guard let last = w.lastDelivered, !w.filling else { return }
        w.filling = true
        var command = RedisCommand(capacity: 96 + channel.utf8.count)
        command.add("XRANGE" as StaticString)
        RedisKeys.addStream(channel, to: &command)
        if last == .zero { command.add("-" as StaticString) } else { command.add(last, exclusive: true) }
        command.add("+" as StaticString)
        command.add("COUNT" as StaticString)
        command.add(Self.fillPageSize)
        // Unreachable: nil comes back at once; the reconnect or the next tick catches up.
        send(channel, [command]) { [weak self] reply, _ in self?.filled(channel, w, reply) }
    }

    private func filled(_ channel: String, _ w: Watch, _ reply: RedisReply?) {
        guard watches[channel] === w else { return }
        w.filling = false
        guard let reply, let events = RedisCodec.events(reply, channel: channel), let last = w.lastDelivered else {
            return  // the connection dropped or the key is not a stream: the next tick retries
        }
        let fresh = events.filter { $0.id > last }
        if let newest = fresh.last { w.lastDelivered = newest.id }
        if !fresh.isEmpty { (w.checkEvery, w.nextCheckTick) = (1, ticks + 1) }  // news no notification brought: look again soon
        // News no notification chained to what we had (a lost notification, a reconnect,
        // a recreated stream): the tail only takes chained news, so it starts again from
        // the next read of Redis.
        if !fresh.isEmpty { w.tail.reset() }
        if let entry = reply.elements?.last, RedisCodec.isLeased(entry) { w.leased = true }
        deliver(fresh, to: channel, w)
        guard watches[channel] === w else { return }
        if events.count == Self.fillPageSize || w.heldOverflow {
            w.heldOverflow = false
            w.held.removeAll()
            return fill(channel, w)
        }
        let held = w.held
        w.held.removeAll()
        // Everything held was stored before this fill's XRANGE ran or is newer; `apply`
        // skips the first kind and chains the second. A hole starts another fill, which
        // covers whatever is left here.
        for n in held {
            guard watches[channel] === w, !w.filling else { return }
            apply(n, channel, w)
        }
    }

    /// A notification on a node's sharded pub/sub connection (`smessage`).
    private func notified(_ channel: String, _ payload: ArraySlice<UInt8>) {
        guard let w = watches[channel] else { return }
        guard let n = RedisCodec.notification(payload, channel: channel) else {
            logger.warning("redis: unreadable notification on \(RedisKeys.stream(channel)); filling from the stream")
            return catchUp(channel, w)
        }
        if w.lastDelivered == nil || w.filling {
            if w.held.count < Self.maxHeldNotifications { w.held.append(n) } else { w.heldOverflow = true }
            return
        }
        apply(n, channel, w)
    }

    /// Any other reply on a node's sharded pub/sub connection: a confirmation, a
    /// server-pushed `sunsubscribe` (the slot moved away), or an error answering the oldest
    /// SSUBSCRIBE/SUNSUBSCRIBE not yet answered (MOVED: the slot is elsewhere).
    private func received(_ reply: RedisReply, from node: RedisNode) {
        if let message = reply.errorMessage {
            let failed = node.pendingSubscriptions.isEmpty ? nil : node.pendingSubscriptions.removeFirst()
            if let failed, subscriptions[failed.channel]?.node === node { subscriptions[failed.channel] = nil }
            if let r = RedisRedirect(message) {
                shards.subscriberRedirected(r)
                if let failed { reconcile(failed.channel) }
            } else {
                counters.commandErrors += 1
                logger.warning("redis \(node.subscriber.role) refused \(failed.map { $0.subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE" } ?? "a command"): \(message)")
            }
            return
        }
        guard let parts = reply.elements, parts.count >= 3, let kind = parts[0].text,
              let nameBytes = parts[1].bytes, let channel = RedisKeys.channel(fromStream: nameBytes) else { return }
        var name: String { RedisKeys.stream(channel) }  // for the log lines only
        switch kind {
        case "smessage", "message":
            // RedisSubscriber hands messages to `notified`; one whose payload is not a bulk
            // string is not ours to read.
            if let w = watches[channel] { catchUp(channel, w) }
        case "ssubscribe":
            if let k = node.pendingSubscriptions.firstIndex(where: { $0.subscribe && $0.channel == channel }) {
                node.pendingSubscriptions.remove(at: k)
            }
            guard subscriptions[channel]?.node === node else { return }
            subscriptions[channel]?.state = .subscribed
            reconcile(channel)
            // Events stored between the baseline (or the last notification from the slot's
            // previous master) and this moment announced nothing to us.
            if let w = watches[channel] { catchUp(channel, w) }
        case "sunsubscribe":
            if let k = node.pendingSubscriptions.firstIndex(where: { !$0.subscribe && $0.channel == channel }) {
                node.pendingSubscriptions.remove(at: k)
            } else {
                // Pushed by the server: the channel's slot moved to another master.
                logger.info("redis: \(name) moved away from \(node.address); subscribing on its new master",
                            metadata: ["event": "redis_subscription_moved"])
                shards.requestRefresh()
            }
            if subscriptions[channel]?.node === node { subscriptions[channel] = nil }
            reconcile(channel)
        default:
            break
        }
    }

    /// Delivers a notification's events that follow `lastDelivered` without a hole; on a
    /// hole, delivers what came before it and fills the rest from the stream.
    private func apply(_ n: RedisNotification, _ channel: String, _ w: Watch) {
        guard var last = w.lastDelivered else { return }
        if n.leased { w.leased = true }
        var previous = n.previous
        // The events to deliver are n.events[first..<end]: already delivered ones skipped
        // at the front, a hole ending them (no new array in the common case, all fresh).
        var first = 0, end = 0
        var hole = false
        for (k, e) in n.events.enumerated() {
            defer { previous = e.id }
            if e.id <= last { if end == first { first = k + 1; end = k + 1 }; continue }
            if previous != last { hole = true; break }
            end = k + 1
            last = e.id
        }
        let fresh = first == 0 && end == n.events.count ? n.events : Array(n.events[first..<end])
        // Each fresh event's previous-ID (set by the script, atomically with its XADD) is the
        // one before it: proof the tail may append them. A hole distrusts the tail.
        if hole { w.tail.reset() } else if !fresh.isEmpty {
            w.tail.take(fresh, after: w.lastDelivered!, fromStart: false, anchoring: false)
            w.tail.trim(maxCount: retainEvents, minMs: 0)
        }
        w.lastDelivered = last
        if !hole, !fresh.isEmpty { w.chainedSinceCheck = true }
        deliver(fresh, to: channel, w)
        if hole, watches[channel] === w { fill(channel, w) }
    }

    private func deliver(_ events: [StoredEvent], to channel: String, _ w: Watch) {
        guard let newest = events.last else { return }
        if newest.final { watches[channel]?.ended = true }
        // A watch dropped meanwhile (a read answered after the unwatch) had its listener
        // dropped first: nil, and the broker looks the channel up.
        delegate?.store(didAppend: events, to: channel, listener: w.listener)
    }

    /// Moves the channel's sharded subscription one step toward "subscribed iff watched,
    /// on the master of its slot".
    private func reconcile(_ channel: String) {
        let wanted = watches[channel] != nil
        if let s = subscriptions[channel] {
            guard s.node.subscriber.isConnected else { subscriptions[channel] = nil; return reconcile(channel) }
            // In step (every watched channel, every tick: nothing built before this), or
            // waiting for Redis to confirm; else leave the old node first.
            guard s.state == .subscribed, !wanted || s.node !== shards.owner(of: channel) else { return }
            if s.node.subscriber.send(RedisCommand("SUNSUBSCRIBE", RedisKeys.stream(channel))) {
                s.node.pendingSubscriptions.append((false, channel))
                subscriptions[channel]?.state = .unsubscribing
            }
            return
        }
        guard wanted, let owner = shards.owner(of: channel), owner.subscriber.isConnected else { return }
        if owner.subscriber.send(RedisCommand("SSUBSCRIBE", RedisKeys.stream(channel))) {
            owner.pendingSubscriptions.append((true, channel))
            subscriptions[channel] = ShardSubscription(node: owner, state: .subscribing)
        }
    }
}

/// Where the Redis engine's data lives: one Redis, or a Redis Cluster named by seed nodes.
public enum RedisTopology: Sendable {
    case single(RedisURL)
    case cluster([RedisURL])
}
