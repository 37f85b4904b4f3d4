// ConnectionBudget: the process-wide limits on open connections, shared by every loop's
// server: `--max-connections` in all, and `--max-connections-per-address` from one peer
// address (so one host's idle sockets cannot hold every slot until the head timeout).
// Taken once per accepted connection and given back at its close, never per event.
#if canImport(Glibc)
import Glibc
#endif

/// @unchecked Sendable: the counts are touched only under `lock` (a pthread mutex, which
/// ThreadSanitizer sees), from any loop's thread.
public final class ConnectionBudget: @unchecked Sendable {
    public enum Outcome: Equatable { case taken, overTotal, overAddress }

    public let limit: Int
    public let perAddressLimit: Int?
    private var lock = pthread_mutex_t()
    private var open = 0
    private var byAddress: [String: Int] = [:]

    public init(limit: Int, perAddressLimit: Int? = nil) {
        precondition(limit >= 1 && (perAddressLimit ?? 1) >= 1, "limits are at least 1")
        self.limit = limit
        self.perAddressLimit = perAddressLimit
        pthread_mutex_init(&lock, nil)
    }

    /// Takes one slot for a connection from `address`, or says which limit refuses it.
    func take(address: String) -> Outcome {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        guard open < limit else { return .overTotal }
        if let perAddressLimit {
            let held = byAddress[address, default: 0]
            guard held < perAddressLimit else { return .overAddress }
            byAddress[address] = held + 1
        }
        open += 1
        return .taken
    }

    func giveBack(address: String) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        precondition(open > 0, "a slot given back was taken")
        open -= 1
        if perAddressLimit != nil, let held = byAddress[address] {
            byAddress[address] = held > 1 ? held - 1 : nil
        }
    }

    /// Connections open in the whole process.
    public var inUse: Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return open
    }
}
