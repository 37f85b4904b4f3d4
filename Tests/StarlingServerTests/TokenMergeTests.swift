// Token merge (SPEC §4) over real sockets on both engines: a slow subscriber's queued
// token runs become one event each instead of a disconnect; `?merge=1` replays a late
// joiner's history as a few events; resuming from a merged event's ID loses and repeats
// nothing; events that are not tokens are never merged, nor merged across; a bad
// `--merge-events` name stops the broker at start.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

/// One published event of a token script, with the ID the store gave it.
struct ScriptEvent {
    var id: String
    var name: String
    /// The `data:` text a client reads (JSON text for non-string data).
    var text: String
    var mergeable: Bool
    var final = false
}

/// Publishes a generation on `channel`: `tokens` events named `token` with short string
/// data (some holding CR and LF split across two tokens), with, every few hundred, an
/// event of another name, a token with JSON number data and a token with a conflate key
/// (none of them mergeable); and, when `final`, a final `token` event.
func publishTokenScript(_ broker: BrokerProcess, _ channel: String, tokens: Int, from start: Int = 1,
                        final: Bool = true, batch: Int = 100) throws -> [ScriptEvent] {
    var objects: [(json: String, event: ScriptEvent)] = []
    for k in start..<(start + tokens) {
        let text = k % 97 == 0 ? "x\r" : k % 97 == 1 && k > 1 ? "\ny" : "w\(k) "
        objects.append(("{\"event\":\"token\",\"data\":\(JSONWriter.quoted(text))}",
                        ScriptEvent(id: "", name: "token", text: text, mergeable: true)))
        if k % 400 == 0 {
            objects.append(("{\"event\":\"mark\",\"data\":\"m\(k)\"}", ScriptEvent(id: "", name: "mark", text: "m\(k)", mergeable: false)))
        }
        if k % 450 == 0 {
            objects.append(("{\"event\":\"token\",\"data\":\(k)}", ScriptEvent(id: "", name: "token", text: "\(k)", mergeable: false)))
        }
        if k % 500 == 0 {
            objects.append(("{\"event\":\"token\",\"conflate\":\"c\(k)\",\"data\":\"c\(k) \"}",
                            ScriptEvent(id: "", name: "token", text: "c\(k) ", mergeable: false)))
        }
    }
    if final {
        objects.append(("{\"event\":\"token\",\"data\":\"END\",\"final\":true}",
                        ScriptEvent(id: "", name: "token", text: "END", mergeable: false, final: true)))
    }
    var out: [ScriptEvent] = []
    for chunk in stride(from: 0, to: objects.count, by: batch).map({ objects[$0..<min($0 + batch, objects.count)] }) {
        let r = try broker.client.publish(channel, json: "[" + chunk.map(\.json).joined(separator: ",") + "]")
        guard r.status == 200 else { throw ClientError("publish: \(r.status) \(r.text)") }
        var id = EventID(try JSONParser.parse(r.body)["first"]!.stringValue!)!
        for o in chunk {  // the IDs of one batch are consecutive
            var e = o.event
            e.id = id.description
            out.append(e)
            id = EventID(ms: id.ms, seq: id.seq + 1)
        }
    }
    return out
}

/// What a client's transcript of `events` is: token text as read, other events marked.
func transcript(_ events: [(name: String, text: String)], lineBreaksAsRead: Bool = true) -> String {
    events.map { e in
        let text = lineBreaksAsRead ? e.text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : e.text
        return e.name == "token" ? text : "[\(e.name):\(text)]"
    }.joined()
}

func transcript(_ script: [ScriptEvent]) -> String { transcript(script.map { ($0.name, $0.text) }) }
func transcript(_ got: [SSEMessage]) -> String { transcript(got.map { ($0.event, $0.data) }) }

/// How many events a fully merged copy of `script` holds: one per run of mergeable
/// events, one per other event.
func mergedCount(_ script: [ScriptEvent]) -> Int {
    var n = 0
    var inRun = false
    for e in script {
        if !e.mergeable || !inRun { n += 1 }
        inRun = e.mergeable
    }
    return n
}

/// Checks what a client received against the script it was published from: the same
/// transcript; only IDs of the script, increasing; every non-token event as published.
func assertMergedCopy(_ got: [SSEMessage], of script: [ScriptEvent], _ what: String,
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(transcript(got), transcript(script), "\(what): identical text", file: file, line: line)
    let index = Dictionary(uniqueKeysWithValues: script.enumerated().map { ($1.id, $0) })
    let positions = got.compactMap { $0.id.flatMap { index[$0] } }
    XCTAssertEqual(positions.count, got.count, "\(what): every ID is a published event's", file: file, line: line)
    XCTAssertEqual(positions, positions.sorted(), "\(what): in order", file: file, line: line)
    XCTAssertEqual(Set(positions).count, positions.count, "\(what): no ID twice", file: file, line: line)
    let byID = Dictionary(got.map { ($0.id ?? "", $0) }, uniquingKeysWith: { a, _ in a })
    for e in script where !e.mergeable {
        XCTAssertEqual(byID[e.id]?.data, e.text, "\(what): \(e.name) \(e.id) arrives on its own, unmerged",
                       file: file, line: line)
    }
}

/// Publishes 4 KiB `pad` events (not mergeable) to `channel`, 4 a request, until the
/// kernel buffers of its stalled subscriber are full and the broker starts to queue (on
/// loopback the kernel takes megabytes first). A request or two may reach the subscriber
/// after the queue was looked at (Redis delivers after the answer): 32 KiB stay below a
/// 64 KiB --client-buffer.
/// Returns how many were published.
func fillKernelBuffers(_ broker: BrokerProcess, _ channel: String) throws -> Int {
    let pad = "{\"event\":\"pad\",\"data\":\"\(String(repeating: "p", count: 4096))\"}"
    let batch = "[" + Array(repeating: pad, count: 4).joined(separator: ",") + "]"
    for k in 1...5_000 {
        XCTAssertEqual(try broker.client.publish(channel, json: batch).status, 200)
        if try broker.metric("starling_queued_bytes") > 0 { return 4 * k }
        guard try broker.metric("starling_slow_consumer_disconnects_total") == 0 else { throw ClientError("cut while filling") }
    }
    throw ClientError("the subscriber's kernel buffers never filled")
}

/// The script's events after `id`.
func script(_ script: [ScriptEvent], after id: String) -> [ScriptEvent] {
    let cut = EventID(id)!
    return script.filter { EventID($0.id)! > cut }
}

final class TokenMergeTests: XCTestCase {
    func testSlowSubscriberGetsTokenRunsMergedWithIdenticalTextAndIsNotCut() throws {
        try onEachEngine(["--merge-events", "token", "--merge-events", "delta", "--client-buffer", "65536",
                          "--retain-events", "100000"]) { broker, run in
            let ch = uniqueChannel("gen")
            let slow = try broker.client.subscribe(ch, receiveBuffer: 4096)  // reads nothing until the end
            let pads = try fillKernelBuffers(broker, ch)
            let healthy = Handoff(try broker.client.subscribe(ch))
            final class Box: @unchecked Sendable { var got: [SSEMessage] = [] }
            let box = Box()
            let done = DispatchSemaphore(value: 0)
            Thread { box.got = (try? healthy.value.readToEnd(timeout: 10)) ?? []; done.signal() }.start()
            let published = try publishTokenScript(broker, ch, tokens: 4000)
            _ = done.wait(timeout: .now() + 30)
            XCTAssertEqual(box.got.map(\.id), published.map(\.id), "[\(run)] a reading subscriber gets every event as published")
            let all = try slow.readToEnd(timeout: 5)
            XCTAssertEqual(all.prefix(pads).map(\.event), Array(repeating: "pad", count: pads), "[\(run)]")
            let got = Array(all.dropFirst(pads))
            XCTAssertTrue(slow.connection.peerClosed)
            XCTAssertEqual(got.last?.id, published.last?.id, "[\(run)] the stream ended at the final event, not cut")
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 0, "[\(run)] merging sufficed")
            XCTAssertGreaterThan(try broker.metric("starling_merged_events_total"), 0)
            XCTAssertLessThan(got.count, published.count / 2, "[\(run)] fewer events than published")
            print("[\(run)] slow subscriber: \(got.count) events for \(published.count) published")
            assertMergedCopy(got, of: published, "[\(run)] slow subscriber")

            // A resume from a merged event's ID: exactly what came after it.
            let index = Dictionary(uniqueKeysWithValues: published.enumerated().map { ($1.id, $0) })
            var previous = -1
            var pick: SSEMessage?
            for m in got {
                let k = index[m.id!]!
                if k - previous > 1, pick == nil, k > published.count / 3 { pick = m }
                previous = k
            }
            let merged = try XCTUnwrap(pick, "[\(run)] a merged event in the middle")
            let resumed = try broker.client.subscribe(ch, lastEventID: merged.id).readToEnd(timeout: 5)
            XCTAssertEqual(resumed.map(\.id), script(published, after: merged.id!).map(\.id), "[\(run)] nothing lost, nothing twice")
            XCTAssertEqual(transcript(Array(got.prefix { $0.id != merged.id }) + [merged]) + transcript(resumed), transcript(published))
        }
    }

    func testWithoutMergeEventsTheSameSlowSubscriberIsCut() throws {
        try onEachEngine(["--client-buffer", "65536", "--retain-events", "100000"]) { broker, run in
            let ch = uniqueChannel("gen")
            let slow = try broker.client.subscribe(ch, receiveBuffer: 4096)
            _ = try fillKernelBuffers(broker, ch)
            _ = try publishTokenScript(broker, ch, tokens: 4000)
            _ = try slow.readToEnd(timeout: 5)
            XCTAssertEqual(try broker.metric("starling_merged_events_total"), 0, "[\(run)]")
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 1, "[\(run)] the control: no merge, a cut")
        }
    }

    func testMergedReplayThenResumeFromAMergedIDLosesAndRepeatsNothing() throws {
        try onEachEngine(["--merge-events", "token", "--retain-events", "100000"]) { broker, run in
            let ch = uniqueChannel("gen")
            var published = try publishTokenScript(broker, ch, tokens: 2500, final: false)
            let late = try broker.client.subscribe(ch, lastEventID: "earliest", query: "?merge=1")
            XCTAssertEqual(late.head.status, 200)
            var got: [SSEMessage] = []
            while got.last?.id != published.last!.id, let m = try late.next(timeout: 5) { got.append(m) }
            XCTAssertEqual(got.count, mergedCount(published), "[\(run)] one event per run, across replay pages")
            print("[\(run)] late joiner with ?merge=1: \(got.count) events for \(published.count) stored")
            assertMergedCopy(got, of: published, "[\(run)] merged replay")

            // Live events afterwards arrive one by one, as published.
            let live = try publishTokenScript(broker, ch, tokens: 5, from: 2501, final: false)
            XCTAssertEqual(try late.next(5).map(\.id), live.map(\.id), "[\(run)] live events unmerged")
            published += live

            // Resume from a merged event's ID, merged and not, while the generation goes on.
            let pick = got[got.count / 2]
            XCTAssertEqual(pick.event, "token")
            let resumedMerged = try broker.client.subscribe(ch, lastEventID: pick.id, query: "?merge=1")
            let resumedPlain = try broker.client.subscribe(ch, lastEventID: pick.id)
            published += try publishTokenScript(broker, ch, tokens: 300, from: 2506)
            let rest = script(published, after: pick.id!)
            let plain = try resumedPlain.readToEnd(timeout: 5)
            XCTAssertEqual(plain.map(\.id), rest.map(\.id), "[\(run)] plain resume: every event after the merged one, once")
            let merged = try resumedMerged.readToEnd(timeout: 5)
            assertMergedCopy(merged, of: rest, "[\(run)] merged resume")
            XCTAssertEqual(transcript(Array(got.prefix { $0.id != pick.id }) + [pick]) + transcript(merged), transcript(published),
                           "[\(run)] the text before and after the resume point is the whole text")
        }
    }

    func testMultiplexedMergedReplayKeepsEachChannelsTextAndResumesByCursor() throws {
        try onEachEngine(["--merge-events", "token", "--retain-events", "100000"]) { broker, run in
            let channels = [uniqueChannel("gen"), uniqueChannel("gen")]
            var published: [[ScriptEvent]] = [[], []]
            for round in 0..<3 {
                for (i, ch) in channels.enumerated() {
                    published[i] += try publishTokenScript(broker, ch, tokens: 300, from: 1 + round * 300, final: false)
                }
            }
            func open(_ lastEventID: String, merge: Bool) throws -> SSEStream {
                let c = try BlockingConnection(port: broker.port)
                let q = channels.map { "channel=\($0)" }.joined(separator: "&") + (merge ? "&merge=1" : "")
                try c.send(StarlingHTTPClient.format("GET", "/v1/events?\(q)", headers: [("Last-Event-ID", lastEventID)]))
                return SSEStream(connection: c, head: try HTTPResponse.read(from: c))
            }
            /// Per channel: the raw text (envelopes carry it JSON-quoted) and the events.
            func split(_ got: [SSEMessage]) throws -> [(text: String, count: Int)] {
                var out = [(text: "", count: 0), (text: "", count: 0)]
                for m in got {
                    let env = try JSONParser.parse(Array(m.data.utf8))
                    let i = channels.firstIndex(of: env["channel"]!.stringValue!)!
                    switch env["data"]! {
                    case .string(let s), .number(let s): out[i].text += s
                    default: XCTFail("unexpected data \(m.data)")
                    }
                    out[i].count += 1
                }
                return out
            }
            let raw = published.map { s in s.map { $0.text }.joined() }
            let total = published[0].count + published[1].count
            let s = try open("earliest", merge: true)
            var got: [SSEMessage] = []
            while try split(got).map(\.text) != raw, let m = try s.next(timeout: 5) { got.append(m) }
            XCTAssertEqual(try split(got).map(\.text), raw, "[\(run)] each channel's text, raw")
            XCTAssertLessThan(got.count, total / 10, "[\(run)] merged")
            XCTAssertEqual(try split(got).map(\.count), published.map(mergedCount), "[\(run)] one event per run on each channel")

            // The cursor of a merged event resumes both channels exactly after it.
            let pick = got[got.count / 2]
            let positions = try XCTUnwrap(MultiplexCursor.decode(pick.id!, channels: channels))
            let resumed = try open(pick.id!, merge: false)
            let rest = zip(published, positions).map { s, p in p.map { script(s, after: $0.description) } ?? s }
            let expected = rest.map(\.count).reduce(0, +)
            let after = try resumed.next(expected, timeout: 5)
            XCTAssertEqual(try split(after).map(\.text), rest.map { $0.map(\.text).joined() }, "[\(run)] nothing lost or repeated")
            XCTAssertNil(try resumed.next(timeout: 0.3))
        }
    }

    func testSlowMultiplexedSubscriberGetsEachChannelsRunsMerged() throws {
        try onEachEngine(["--merge-events", "token", "--client-buffer", "65536", "--retain-events", "100000"]) { broker, run in
            let channels = [uniqueChannel("gen"), uniqueChannel("gen")]
            let c = try BlockingConnection(port: broker.port, receiveBuffer: 4096)
            try c.send(StarlingHTTPClient.format("GET", "/v1/events?" + channels.map { "channel=\($0)" }.joined(separator: "&")))
            let slow = SSEStream(connection: c, head: try HTTPResponse.read(from: c))
            let pads = try fillKernelBuffers(broker, channels[0])
            var published: [[ScriptEvent]] = [[], []]
            for round in 0..<6 {
                for (i, ch) in channels.enumerated() {
                    published[i] += try publishTokenScript(broker, ch, tokens: 400, from: 1 + round * 400, final: round == 5)
                }
            }
            let got = Array(try slow.readToEnd(timeout: 5).dropFirst(pads))
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 0, "[\(run)] merging sufficed")
            XCTAssertLessThan(got.count, (published[0].count + published[1].count) / 2, "[\(run)] fewer events")
            var texts = ["", ""]
            var lastPositions: [EventID?] = [nil, nil]
            for m in got {
                let env = try JSONParser.parse(Array(m.data.utf8))
                let i = channels.firstIndex(of: env["channel"]!.stringValue!)!
                switch env["data"]! {
                case .string(let s), .number(let s): texts[i] += s
                default: XCTFail("unexpected data \(m.data)")
                }
                // Each cursor moves only its own channel, to a published ID.
                let positions = try XCTUnwrap(MultiplexCursor.decode(m.id!, channels: channels))
                XCTAssertEqual(positions[1 - i], lastPositions[1 - i], "[\(run)]")
                XCTAssertTrue(published[i].contains { $0.id == positions[i]?.description }, "[\(run)]")
                lastPositions = positions
            }
            XCTAssertEqual(texts, published.map { $0.map(\.text).joined() }, "[\(run)] each channel's text, raw")
        }
    }

    func testTokenQueuesMergeBeforeAnyoneIsShedAtTheGlobalCap() throws {
        // A client may queue 64 MiB, all clients together only 256 KiB: a stalled client
        // queues about 800 KiB of token events between two checks of the cap (every 0.5 s).
        try onEachEngine(["--merge-events", "token", "--client-buffer", "67108864", "--max-queued-bytes", "262144",
                          "--retain-events", "100000"]) { broker, run in
            let ch = uniqueChannel("gen")
            let stalled = try broker.client.subscribe(ch, receiveBuffer: 4096)
            let pads = try fillKernelBuffers(broker, ch)
            let published = try publishTokenScript(broker, ch, tokens: 16_000, batch: 500)
            let unmerged = published.reduce(0) { $0 + SSEEncoder.event(id: $1.id, name: $1.name, data: $1.text).count }
            XCTAssertGreaterThan(unmerged, 3 * 262_144, "[\(run)] unmerged, the queue would pass the cap")
            usleep(1_200_000)  // two checks of the cap
            XCTAssertEqual(try broker.metric("starling_shed_global_cap_total"), 0, "[\(run)] merging sufficed")
            XCTAssertGreaterThan(try broker.metric("starling_merged_events_total"), 0, "[\(run)] the cap was passed")
            XCTAssertLessThan(try broker.metric("starling_queued_bytes"), 262_144)
            for s in [stalled] {
                let got = Array(try s.readToEnd(timeout: 10).dropFirst(pads))
                XCTAssertEqual(got.last?.id, published.last?.id, "[\(run)] to the final event")
                XCTAssertEqual(transcript(got), transcript(published), "[\(run)] identical text")
                XCTAssertLessThan(got.count, published.count / 2)
            }
        }
    }

    func testBadMergeInputIsRefused() throws {
        for (bad, why) in [("bad name", "not an event name"), ("starling.token", "reserved"),
                           (String(repeating: "t", count: 65), "not an event name")] {
            let r = try BrokerProcess.run(["check", "--merge-events", "token", "--merge-events", bad])
            XCTAssertEqual(r.status, 1, r.stdout)
            XCTAssertTrue(r.stdout.contains("problem: merge_events: '\(bad)' is \(why)"), r.stdout)
            XCTAssertNil(try? BrokerProcess(["--merge-events", bad], timeout: 3), "serve refuses to start with '\(bad)'")
        }
        let file = NSTemporaryDirectory() + "merge-\(UUID().uuidString).toml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "merge_events = [\"token\", \"no spaces\"]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try BrokerProcess.run(["check", "--config", file])
        XCTAssertEqual(fromFile.status, 1, fromFile.stdout)
        XCTAssertTrue(fromFile.stdout.contains("problem: merge_events: 'no spaces' is not an event name"), fromFile.stdout)
        let env = try BrokerProcess.run(["check"], environment: ["STARLING_MERGE_EVENTS": "token,delta"])
        XCTAssertEqual(env.status, 0, env.stdout)
        XCTAssertTrue(env.stdout.contains("merge_events = [\"token\", \"delta\"]"), env.stdout)

        try onEachEngine(["--merge-events", "token"]) { broker, run in
            for bad in ["yes", "2", ""] {
                let r = try broker.client.subscribe(uniqueChannel(), lastEventID: "earliest", query: "?merge=\(bad)")
                XCTAssertEqual(r.head.status, bad.isEmpty ? 200 : 400, "[\(run)] merge=\(bad)")
                if !bad.isEmpty { XCTAssertEqual(errorCode(r.head), "bad_merge") }
            }
        }
    }
}

/// The figures for the closing note (ops/bench/merge-figures.sh prints them): events and
/// bytes a slow subscriber and a late joiner receive for one 2,000-token generation, with
/// token merge and without. Memory engine, one loop: the figures are counts, not timings.
final class TokenMergeFigures: XCTestCase {
    /// Events and SSE bytes (each event as the broker encodes it) of `got`.
    func size(_ got: [SSEMessage]) -> (events: Int, bytes: Int) {
        (got.count, got.reduce(0) { $0 + SSEEncoder.event(id: $1.id, name: $1.event, data: $1.data).count })
    }

    /// A stalled subscriber (kernel buffers full) during the generation, which then reads
    /// to the end, resuming with Last-Event-ID if it was cut.
    func slowSubscriber(merge: Bool, tokens: Int) throws -> (events: Int, bytes: Int, cuts: Int, text: String) {
        let broker = try BrokerProcess((merge ? ["--merge-events", "token"] : [])
                                       + ["--threads", "1", "--client-buffer", "65536", "--retain-events", "100000"])
        defer { broker.terminate() }
        let ch = uniqueChannel("gen")
        let slow = try broker.client.subscribe(ch, receiveBuffer: 4096)
        let pads = try fillKernelBuffers(broker, ch)
        let published = try publishTokenScript(broker, ch, tokens: tokens)
        var all = try slow.readToEnd(timeout: 5)
        let cuts = try broker.metric("starling_slow_consumer_disconnects_total")
        if all.last?.id != published.last?.id, let last = all.last?.id {
            all += try broker.client.subscribe(ch, lastEventID: last).readToEnd(timeout: 5)
        }
        let got = Array(all.dropFirst(pads))
        XCTAssertEqual(transcript(got), transcript(published))
        let s = size(got)
        return (s.events, s.bytes, cuts, transcript(got))
    }

    /// A subscriber from `earliest` once the generation is complete.
    func lateJoiner(merge: Bool, tokens: Int) throws -> (events: Int, bytes: Int) {
        let broker = try BrokerProcess(["--merge-events", "token", "--threads", "1", "--retain-events", "100000"])
        defer { broker.terminate() }
        let ch = uniqueChannel("gen")
        let published = try publishTokenScript(broker, ch, tokens: tokens)
        let got = try broker.client.subscribe(ch, lastEventID: "earliest", query: merge ? "?merge=1" : "").readToEnd(timeout: 5)
        XCTAssertEqual(transcript(got), transcript(published))
        return size(got)
    }

    func testReportTokenMergeFigures() throws {
        let tokens = 2000
        let slowPlain = try slowSubscriber(merge: false, tokens: tokens)
        let slowMerged = try slowSubscriber(merge: true, tokens: tokens)
        let latePlain = try lateJoiner(merge: false, tokens: tokens)
        let lateMerged = try lateJoiner(merge: true, tokens: tokens)
        print("figure: \(tokens) tokens (+ \(tokens / 400 + tokens / 450 + tokens / 500 + 1) other events), text \(slowMerged.text.utf8.count) bytes")
        print("figure: slow subscriber, --client-buffer 64KiB, without merge: \(slowPlain.events) events, \(slowPlain.bytes) bytes, \(slowPlain.cuts) disconnect(s)")
        print("figure: slow subscriber, --client-buffer 64KiB, --merge-events token: \(slowMerged.events) events, \(slowMerged.bytes) bytes, \(slowMerged.cuts) disconnect(s)")
        print("figure: late joiner from earliest: \(latePlain.events) events, \(latePlain.bytes) bytes")
        print("figure: late joiner from earliest with ?merge=1: \(lateMerged.events) events, \(lateMerged.bytes) bytes")
        XCTAssertLessThan(slowMerged.events, slowPlain.events)
        XCTAssertEqual(slowMerged.cuts, 0)
        XCTAssertLessThan(lateMerged.bytes, latePlain.bytes / 4)
    }
}
