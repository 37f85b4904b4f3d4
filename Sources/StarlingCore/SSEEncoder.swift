// SSEEncoder: the bytes of the text/event-stream format, outbound. Data with line
// breaks (CRLF, CR or LF) becomes several `data:` lines, as the format requires.

public enum SSEEncoder {
    /// `id: …\nevent: …\ndata: …\n\n`; the `event:` line is left out for `message`.
    public static func event(id: String?, name: String, data: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.utf8.count + name.utf8.count + 48)
        if let id {
            out.append(contentsOf: "id: ".utf8)
            out.append(contentsOf: id.utf8)
            out.append(0x0A)
        }
        if name != "message" {
            out.append(contentsOf: "event: ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(0x0A)
        }
        appendData(data, to: &out)
        out.append(0x0A)
        return out
    }

    /// One `data:` line per line of `data` (an empty value still gets one line).
    public static func appendData(_ data: String, to out: inout [UInt8]) {
        out.append(contentsOf: "data: ".utf8)
        var previousWasCR = false
        for b in data.utf8 {
            if b == 0x0A {
                if previousWasCR { previousWasCR = false; continue }
                out.append(contentsOf: "\ndata: ".utf8)
            } else if b == 0x0D {
                previousWasCR = true
                out.append(contentsOf: "\ndata: ".utf8)
                continue
            } else {
                out.append(b)
            }
            previousWasCR = false
        }
        out.append(0x0A)
    }

    /// A comment line: invisible to EventSource, keeps proxies and idle timers awake.
    public static func comment(_ text: String) -> [UInt8] { Array(":\(text)\n".utf8) }

    /// The opening bytes of every stream: a reconnect delay and a comment, sent at once.
    public static func opening(retryMs: Int) -> [UInt8] { Array("retry: \(retryMs)\n: starling\n\n".utf8) }
}
