// LoopBound: a loop-owned object carried through another thread and used only back on
// its loop (a completion handed to another loop and sent home, a broker named in a
// cross-loop message). The check makes a mistake fail loudly instead of racing.

/// @unchecked Sendable: the value is only touched on `loop`'s thread, which `value`
/// asserts; other threads merely carry the reference.
public struct LoopBound<Value>: @unchecked Sendable {
    private let wrapped: Value
    public let loop: EventLoop

    public init(_ value: Value, on loop: EventLoop) {
        self.wrapped = value
        self.loop = loop
    }

    public var value: Value {
        assert(loop.isCurrent, "a loop-bound value was used off its loop's thread")
        return wrapped
    }

    /// Runs `body` with the value on its loop, sent from `from`'s thread (batched).
    public func send(from: EventLoop, _ body: @escaping @Sendable (Value) -> Void) {
        if from === loop { return body(wrapped) }
        let me = self
        from.send(to: loop.inbox) { body(me.value) }
    }
}
