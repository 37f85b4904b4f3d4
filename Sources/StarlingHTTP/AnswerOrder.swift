// AnswerOrder: answers to pipelined requests leave in request order (RFC 9112 §9.3.2),
// even when a later request is answered first (an asynchronous store). An answer that
// arrives early is held until every answer before it has gone.

struct AnswerOrder {
    /// Sequence of the next answer to send.
    private(set) var nextToSend: UInt64 = 0
    private var held: [UInt64: (bytes: [UInt8], close: Bool)] = [:]

    /// Takes the answer to request `seq`; calls `send` for every answer now due, in order.
    /// A second answer to one request is dropped: the first (say, an early refusal of a
    /// streaming body, then a protocol error on the same body) is the one the client gets.
    mutating func put(_ seq: UInt64, bytes: [UInt8], close: Bool, send: ([UInt8], Bool) -> Void) {
        guard seq >= nextToSend, held[seq] == nil else { return }
        guard seq == nextToSend else {
            held[seq] = (bytes, close)
            return
        }
        send(bytes, close)
        nextToSend += 1
        while let next = held.removeValue(forKey: nextToSend) {
            send(next.bytes, next.close)
            nextToSend += 1
        }
    }

    /// Whether the answer to `seq` is the one due now (the common case: answers in order).
    func isDue(_ seq: UInt64) -> Bool { seq == nextToSend }

    /// The answer due now (`isDue`) was sent by the caller; calls `send` for every held
    /// answer that is now due, in order.
    mutating func sentDue(_ seq: UInt64, send: ([UInt8], Bool) -> Void) {
        precondition(seq == nextToSend, "only the answer due now is sent directly")
        nextToSend += 1
        guard !held.isEmpty else { return }
        while let next = held.removeValue(forKey: nextToSend) {
            send(next.bytes, next.close)
            nextToSend += 1
        }
    }

    /// Whether every one of the first `count` requests has been answered.
    func answeredAll(_ count: UInt64) -> Bool { nextToSend == count && held.isEmpty }

    mutating func removeAll() { held.removeAll() }
}
