// PublishBatch: the publishes of one loop turn waiting to leave for one Redis as a single
// `batch` call of ops/redis/publish.lua (RedisStore.flushBatch). Each publish adds its key,
// its argument count and its arguments (`[lease <ms>] <event>…`, 7 per event or 3 for one
// plain event); the retention pair and `checked` are the batch's, written once. Redis pays a
// call's own cost and the arguments every call would repeat once per batch (docs/redis.md).
import StarlingCore

struct PublishBatch {
    private(set) var channels: [String] = []
    /// Events per publish, to match each reply's IDs.
    private(set) var events: [Int] = []
    /// Each publish's completion, wrapped: a closure stored in an array of function type is
    /// kept at the array's generic abstraction, through a thunk allocated for each one.
    private(set) var completions: [Completion] = []
    struct Completion {
        let done: (Result<AppendResult, BrokerError>) -> Void
    }
    /// Every publish's `<argc> <args>…`, in order.
    private(set) var arguments: RedisCommand

    init(capacity: Int) { arguments = RedisCommand(capacity: capacity) }

    var count: Int { channels.count }

    mutating func add(_ channel: String, _ drafts: [EventDraft], leaseMs: UInt64?,
                      _ completion: @escaping (Result<AppendResult, BrokerError>) -> Void) {
        precondition(!drafts.isEmpty, "a publish stores at least one event")
        channels.append(channel)
        events.append(drafts.count)
        completions.append(Completion(done: completion))
        arguments.add((leaseMs == nil ? 0 : 2) + RedisCodec.publishArgumentCount(drafts))
        if let leaseMs {
            arguments.add("lease" as StaticString)
            arguments.add(Int(leaseMs))
        }
        RedisCodec.addPublishArguments(drafts, to: &arguments)
    }
}
