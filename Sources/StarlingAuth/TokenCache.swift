// TokenCache: token text → verified claims, so a thousand subscribers holding the same
// token cost one signature check. Bounded: entries leave at their `exp` (swept when the
// cache is full) and, if it is still full, oldest first. Only verified tokens go in, so
// a stream of forged tokens cannot fill it.

struct TokenCache {
    private struct Entry { var claims: TokenClaims; var evictAt: Int? }

    let capacity: Int
    private var entries: [String: Entry] = [:]
    private var order: [String] = []      // insertion order; may hold keys already swept
    private var orderHead = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var count: Int { entries.count }

    mutating func lookup(_ token: String, nowSeconds: Int) -> TokenClaims? {
        guard let e = entries[token] else { return nil }
        if let t = e.evictAt, nowSeconds >= t { entries[token] = nil; return nil }
        return e.claims
    }

    mutating func insert(_ token: String, _ claims: TokenClaims, evictAt: Int?, nowSeconds: Int) {
        guard capacity > 0 else { return }
        if entries[token] == nil {
            if entries.count >= capacity || order.count - orderHead >= 2 * capacity { sweep(nowSeconds: nowSeconds) }
            while entries.count >= capacity, orderHead < order.count {
                entries[order[orderHead]] = nil
                orderHead += 1
            }
            order.append(token)
        }
        entries[token] = Entry(claims: claims, evictAt: evictAt)
        if orderHead > capacity { order.removeFirst(orderHead); orderHead = 0 }
    }

    private mutating func sweep(nowSeconds: Int) {
        entries = entries.filter { _, e in e.evictAt.map { nowSeconds < $0 } ?? true }
        order = order[orderHead...].filter { entries[$0] != nil }
        orderHead = 0
    }
}
