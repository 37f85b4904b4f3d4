// LoopGroup: N event loops, each run by its own thread (`--threads N`). Loop 0 runs on
// the thread that calls `run` (the main thread: signals are handled there); the others
// on threads of their own. Loops are built and set up on the calling thread before any
// runs, then each is handed to its thread and touched only there.
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

public final class LoopGroup {
    public let loops: [EventLoop]

    public init(count: Int) {
        precondition(count >= 1, "a group has at least one loop")
        loops = (0..<count).map { EventLoop(index: $0) }
    }

    /// The cores this process may run on (libuv reads sched_getaffinity), at least 1.
    public static var availableCores: Int { max(1, Int(uv_available_parallelism())) }

    /// Starts loops 1… on their threads and runs loop 0 on this one until it stops.
    public func run() {
        var threads: [pthread_t] = []
        for loop in loops.dropFirst() {
            let box = Unmanaged.passRetained(ThreadStart(loop))
            var thread = pthread_t()
            let r = pthread_create(&thread, nil, { arg in
                let start = Unmanaged<ThreadStart>.fromOpaque(arg!).takeRetainedValue()
                start.loop.run()
                return nil
            }, box.toOpaque())
            precondition(r == 0, "cannot start a loop thread (errno \(r))")
            threads.append(thread)
        }
        loops[0].run()
    }
}

/// Carries a loop to the thread that will own it.
private final class ThreadStart {
    let loop: EventLoop
    init(_ loop: EventLoop) { self.loop = loop }
}
