// A Connection's one deadline on the loop's timer wheel: the head timeout while a head
// arrives (slowloris), the idle timeout between keep-alive requests, the heartbeat while
// streaming, the linger after a graceful shutdown. Activity only moves a timestamp; when
// the wheel fires, the real deadline is computed and rescheduled if it has not passed.
import StarlingCore

extension Connection {
    func schedule(atMs deadline: UInt64) {
        scheduledMs = deadline
        loop.wheel.schedule(self, atMs: deadline)
    }

    func timerFired(nowMs now: UInt64) {
        scheduledMs = .max
        switch state {
        case .closed:
            return
        case .closing:
            close()
        case .streaming:
            let due = lastWriteMs + heartbeatMs
            if now >= due {
                if let heartbeat, queue.isIdle {
                    queue.pushUnbounded(.init(heartbeat))
                    loop.markDirty(self)
                }
                schedule(atMs: now + heartbeatMs)
            } else {
                schedule(atMs: due)
            }
        case .http:
            if let began = reader.headBeganMs {
                let due = began + limits.headTimeoutMs
                if now >= due {
                    timedOut(HTTPError(408, "head_timeout", "the request head did not arrive within \(limits.headTimeoutMs) ms"))
                } else {
                    schedule(atMs: due)
                }
                return
            }
            // Between requests: the first request must start within the head timeout,
            // later ones within the keep-alive idle timeout. Never cut an answer short.
            let wait = servedRequests == 0 ? limits.headTimeoutMs : limits.idleTimeoutMs
            let due = max(lastReadMs, lastWriteMs) + wait
            if now >= due, queue.isIdle, answerBuffer.isEmpty, isBetweenRequests {
                close()
            } else {
                schedule(atMs: max(due, now + 100))
            }
        }
    }
}
