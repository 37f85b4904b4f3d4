// Property and fuzz tests for the parsers that read untrusted bytes: JSONParser, the
// publish bodies, SSEParser, EventID, UTF8Check. Bounded (a couple of seconds), seeded:
// every failure message carries the seed; rerun with STARLING_FUZZ_SEED=<seed> to
// reproduce, and STARLING_FUZZ_SCALE=<n> for n times more cases. Inputs that once broke something live in `regressions` for good.
import Foundation
import XCTest
@testable import StarlingCore

/// xorshift64*: tiny, fast, and the same sequence for the same seed everywhere.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Iterations multiplier: `STARLING_FUZZ_SCALE=50` for a long hunt, 1 in the suite.
    static let scale: Int = ProcessInfo.processInfo.environment["STARLING_FUZZ_SCALE"].flatMap(Int.init) ?? 1

    /// The seed for this run: `STARLING_FUZZ_SEED` if set, else a fresh one (printed).
    static func runSeed(_ test: String) -> UInt64 {
        if let s = ProcessInfo.processInfo.environment["STARLING_FUZZ_SEED"], let v = UInt64(s) { return v }
        let v = UInt64.random(in: 1...UInt64.max)
        print("\(test): STARLING_FUZZ_SEED=\(v)")
        return v
    }
}

/// Random inputs: valid values, and mutations of valid texts with the bytes parsers trip on.
struct Fuzz {
    var rng: SeededGenerator
    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0...xs.count - 1)] }

    static let nasty: [[UInt8]] = [
        [0x22], [0x5C], Array("\\u".utf8), Array("\\uD800".utf8), Array("\\uDC00".utf8), Array("\\uD83D\\uDE80".utf8),
        [0x7B], [0x7D], [0x5B], [0x5D], [0x2C], [0x3A], [0x0D], [0x0A], [0x0D, 0x0A], [0x00], [0x09],
        [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xEF, 0xBB, 0xBF],
        Array("-".utf8), Array("0".utf8), Array("1e".utf8), Array("1E+999".utf8), Array("-0.0e-0".utf8), Array(".5".utf8),
        Array("true".utf8), Array("nul".utf8), Array("data:".utf8), Array("id:".utf8), Array("event:".utf8),
        Array("retry:".utf8), Array(":".utf8), Array("\n\n".utf8), Array("\r\r".utf8), Array("99999999999999999999999".utf8),
    ]

    /// A random Unicode string, biased towards line breaks, quotes, controls and astral planes.
    mutating func unicode(maxScalars: Int = 24) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<int(0...maxScalars) {
            let v: UInt32
            switch int(0...9) {
            case 0: v = pick([0x0A, 0x0D, 0x22, 0x5C, 0x00, 0x09, 0x3A, 0x20, 0xFEFF, 0x2028])
            case 1: v = UInt32(int(0...0x1F))
            case 2: v = UInt32(int(0x80...0x7FF))
            case 3: v = UInt32(int(0x800...0xD7FF))
            case 4: v = UInt32(int(0x10000...0x10FFFF))
            case 5: v = UInt32(int(0xE000...0xFFFD))
            default: v = UInt32(int(0x20...0x7E))
            }
            s.append(Unicode.Scalar(v)!)
        }
        return String(s)
    }

    mutating func jsonNumber() -> String {
        var s = chance(0.3) ? "-" : ""
        s += chance(0.2) ? "0" : String(int(1...9)) + String((0..<int(0...25)).map { _ in Character(String(int(0...9))) })
        if chance(0.3) { s += "." + String((0..<int(1...6)).map { _ in Character(String(int(0...9))) }) }
        if chance(0.2) { s += pick(["e", "E"]) + pick(["", "+", "-"]) + String(int(0...400)) }
        return s
    }

    mutating func json(depth: Int = 0) -> JSONValue {
        switch int(0...(depth > 4 ? 4 : 6)) {
        case 0: return .null
        case 1: return .bool(chance(0.5))
        case 2: return .number(jsonNumber())
        case 3, 4: return .string(unicode())
        case 5: return .array((0..<int(0...4)).map { _ in json(depth: depth + 1) })
        default: return .object((0..<int(0...4)).map { _ in (unicode(maxScalars: 8), json(depth: depth + 1)) })
        }
    }

    /// Flips, inserts, deletes, duplicates and splices nasty byte strings.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0..<int(1...4) {
            switch int(0...5) {
            case 0 where !b.isEmpty: b[int(0...b.count - 1)] ^= UInt8(1 << int(0...7))
            case 1: b.insert(UInt8(int(0...255)), at: int(0...b.count))
            case 2 where !b.isEmpty:
                let i = int(0...b.count - 1); b.removeSubrange(i..<min(b.count, i + int(1...8)))
            case 3 where !b.isEmpty:
                let i = int(0...b.count - 1); let j = min(b.count, i + int(1...16)); b.insert(contentsOf: b[i..<j], at: int(0...b.count))
            case 4: b.insert(contentsOf: pick(Fuzz.nasty), at: int(0...b.count))
            default: if !b.isEmpty { b.removeSubrange(int(0...b.count - 1)...) }
            }
        }
        return b
    }

    mutating func bytes(max: Int) -> [UInt8] { (0..<int(0...max)).map { _ in UInt8(int(0...255)) } }

    /// Splits `bytes` at random points (including empty chunks and single bytes).
    mutating func chunks(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while i < bytes.count {
            let n = chance(0.1) ? 0 : int(1...max(1, min(bytes.count - i, chance(0.5) ? 3 : 64)))
            out.append(bytes[i..<i + n]); i += n
        }
        return out
    }
}

final class PropertyTests: XCTestCase {
    let limits = PublishLimits(maxEventBytes: 1 << 20)

    /// Inputs that once crashed or misparsed. Each must keep giving the same answer.
    static let regressions: [[UInt8]] = [
        Array(#"{"data":"\uD800"}"#.utf8), Array(#"{"data":"\uD83D"}"#.utf8), Array(#"["\u00"#.utf8),
        Array(#"{"data":-}"#.utf8), Array("[".utf8) + [UInt8](repeating: 0x5B, count: 10_000), [0xEF, 0xBB, 0xBF],
        Array(#"{"data":1,"seq":99999999999999999999,"producer":"p"}"#.utf8), Array("\"\\u0000\"".utf8), [],
    ]

    func testJSONRoundTripsThroughTheCompactWriter() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for k in 0..<4500 * SeededGenerator.scale {
            let v = f.json()
            let text = JSONWriter.compact(v)
            guard let back = try? JSONParser.parse(Array(text.utf8)) else {
                return XCTFail("seed \(seed) case \(k): compact output does not parse: \(text)")
            }
            XCTAssertEqual(back, v, "seed \(seed) case \(k): \(text)")
            XCTAssertEqual(JSONWriter.compact(back), text, "seed \(seed) case \(k)")
        }
    }

    func testJSONParserSurvivesMutatedInput() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for input in PropertyTests.regressions { _ = try? JSONParser.parse(input) }
        for _ in 0..<9000 * SeededGenerator.scale {
            let input = f.mutate(Array(JSONWriter.compact(f.json()).utf8))
            do {
                let v = try JSONParser.parse(input)
                // Whatever it accepts, it accepts again in compact form: nothing half-read.
                XCTAssertEqual(try? JSONParser.parse(Array(JSONWriter.compact(v).utf8)), v, "seed \(seed): \(input)")
            } catch let e as JSONError {
                XCTAssertTrue((0...input.count).contains(e.offset), "seed \(seed): offset \(e.offset) outside \(input.count) bytes")
            } catch {
                XCTFail("seed \(seed): unexpected error type \(error)")
            }
        }
        for _ in 0..<1500 * SeededGenerator.scale { _ = try? JSONParser.parse(f.bytes(max: 64)) }
    }

    func testPublishBodiesSurviveMutatedInput() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        func expectBrokerError(_ body: () throws -> Any, _ input: [UInt8]) {
            do { _ = try body() } catch let e as BrokerError {
                XCTAssertTrue(e.kind == .badRequest || e.kind == .tooLarge, "seed \(seed): \(e)")
            } catch { XCTFail("seed \(seed): \(error) is not a BrokerError for \(input)") }
        }
        for input in PropertyTests.regressions {
            expectBrokerError({ try PublishBody.parseJSON(input, limits: self.limits, channelKey: false) }, input)
            expectBrokerError({ try PublishBody.parseNDJSON(input, limits: self.limits, channelKey: true) }, input)
            expectBrokerError({ try PublishBody.parseEventStream(input, limits: self.limits) }, input)
        }
        for _ in 0..<4500 * SeededGenerator.scale {
            let events: [JSONValue] = (0..<f.int(1...3)).map { _ in
                var m: [(String, JSONValue)] = [("data", f.json(depth: 3))]
                if f.chance(0.5) { m.append(("event", .string(f.pick(["tick", "a.b", "starling.x", "", "sp ace"])))) }
                if f.chance(0.3) { m.append(("channel", .string(f.pick(["c1", "a:b@c", "bad channel"])))) }
                if f.chance(0.2) { m.append(("producer", .string("p"))); m.append(("seq", .number(f.jsonNumber()))) }
                if f.chance(0.1) { m.append(("final", .bool(true))) }
                return .object(m)
            }
            let json = Array(JSONWriter.compact(.array(events)).utf8)
            let nd = Array(events.map(JSONWriter.compact).joined(separator: f.pick(["\n", "\r\n", "\n\n"])).utf8)
            let sse = Array(events.map { _ in "event: \(f.unicode(maxScalars: 4))\ndata: \(f.unicode())\n\n" }.joined().utf8)
            let a = f.chance(0.8) ? f.mutate(json) : json, b = f.chance(0.8) ? f.mutate(nd) : nd, c = f.chance(0.8) ? f.mutate(sse) : sse
            expectBrokerError({ try PublishBody.parseJSON(a, limits: self.limits, channelKey: false) }, a)
            expectBrokerError({ try PublishBody.parseJSON(a, limits: PublishLimits(maxEventBytes: 8), channelKey: true) }, a)
            expectBrokerError({ try PublishBody.parseNDJSON(b, limits: self.limits, channelKey: true) }, b)
            expectBrokerError({ try PublishBody.parseEventStream(c, limits: self.limits) }, c)
            expectBrokerError({ try PublishBody.parsePlainText(c, name: nil, conflate: nil, final: false, limits: self.limits) }, c)
        }
    }

    func testAcceptedPublishBodiesHoldOnlyValidEvents() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for _ in 0..<4500 * SeededGenerator.scale {
            let body = f.mutate(Array(#"[{"event":"tick","data":{"n":1}},{"data":"x","conflate":"k","channel":"c"}]"#.utf8))
            guard let drafts = try? PublishBody.parseJSON(body, limits: limits, channelKey: false) else { continue }
            for d in drafts {
                XCTAssertTrue(Names.isValidEventName(d.name) && !Names.isReserved(d.name), "seed \(seed): \(d)")
                XCTAssertNil(d.channel, "seed \(seed): channel accepted on a channel route")
                XCTAssertEqual(d.producer == nil, d.seq == nil)
            }
        }
    }

    func testSSEParserSurvivesRandomBytesInRandomChunks() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for _ in 0..<2400 * SeededGenerator.scale {
            var input = f.chance(0.5) ? f.bytes(max: 300) : Array("id: 1\nevent: x\ndata: a\r\ndata:b\r\rretry: 10\n:c\n\n".utf8)
            input = f.mutate(input)
            var whole = SSEParser()
            let expected = whole.feed(input)
            var split = SSEParser()
            var got: [SSEMessage] = []
            for chunk in f.chunks(input) { got += split.feed(chunk) }
            XCTAssertEqual(got, expected, "seed \(seed): chunking changed the events of \(input)")
            XCTAssertEqual(split.lastEventID, whole.lastEventID)
            XCTAssertEqual(split.retry, whole.retry)
            XCTAssertEqual(split.comments, whole.comments)
        }
    }

    func testSSEEncodeThenParseGivesBackTheData() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for _ in 0..<1200 * SeededGenerator.scale {
            var stream: [UInt8] = []
            var expected: [SSEMessage] = []
            var lastID: String?
            for _ in 0..<f.int(1...5) {
                let id: String? = f.chance(0.7) ? EventID(ms: UInt64(f.int(0...Int.max)), seq: UInt64(f.int(0...1000))).description : nil
                let name = f.chance(0.5) ? "message" : f.pick(["tick", "a.b", "x:y-z_1", "message"])
                let data = f.unicode(maxScalars: 40)
                stream += SSEEncoder.event(id: id, name: name, data: data)
                if f.chance(0.3) { stream += SSEEncoder.comment(" heartbeat") }
                if id != nil { lastID = id }
                expected.append(SSEMessage(id: lastID, event: name, data: PropertyTests.lineBreaksToLF(data)))
            }
            var p = SSEParser()
            var got: [SSEMessage] = []
            for chunk in f.chunks(stream) { got += p.feed(chunk) }
            XCTAssertEqual(got, expected, "seed \(seed)")
        }
    }

    /// CRLF and CR become LF, scalar by scalar (Foundation's replacingOccurrences works on
    /// grapheme clusters and misses a CR followed by a combining mark).
    static func lineBreaksToLF(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        var previousWasCR = false
        for u in s.unicodeScalars {
            if u == "\n", previousWasCR { previousWasCR = false; continue }
            previousWasCR = u == "\r"
            out.append(previousWasCR ? "\n" : u)
        }
        return String(out)
    }

    func testEventIDParsingRoundTripsAndRejectsJunk() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for _ in 0..<9000 * SeededGenerator.scale {
            let id = EventID(ms: f.rng.next() >> UInt64(f.int(0...63)), seq: f.rng.next() >> UInt64(f.int(0...63)))
            XCTAssertEqual(EventID(id.description), id, "seed \(seed)")
            XCTAssertEqual(ResumePoint(header: " \(id) "), id == .zero ? .earliest : .after(id))
            let junk = String(decoding: f.mutate(Array(id.description.utf8)), as: UTF8.self)
            if let parsed = EventID(junk) {
                // Whatever parses is digits and at most one dash, and prints back to the same ID.
                XCTAssertTrue(junk.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "-") }, "seed \(seed): \(junk)")
                XCTAssertEqual(EventID(parsed.description), parsed)
            }
            _ = ResumePoint(header: junk)
        }
        for bad in ["", "-", "1-", "-1", "1-2-3", "18446744073709551616", "1-18446744073709551616", "+1", " 1", "1 ", "1.5", "٣-1"] {
            XCTAssertNil(EventID(bad), bad)
        }
        XCTAssertEqual(EventID("18446744073709551615-18446744073709551615"), EventID(ms: .max, seq: .max))
    }

    func testUTF8CheckAgreesWithTheStandardLibrary() {
        let seed = SeededGenerator.runSeed(#function)
        var f = Fuzz(seed: seed)
        for _ in 0..<12000 * SeededGenerator.scale {
            let input = f.chance(0.5) ? f.mutate(Array(f.unicode().utf8)) : f.bytes(max: 24)
            let ours = UTF8Check.firstInvalidOffset(input)
            let std = String(validating: input, as: UTF8.self)
            XCTAssertEqual(ours == nil, std != nil, "seed \(seed): \(input)")
            if let k = ours {
                XCTAssertNotNil(String(validating: input[..<k], as: UTF8.self), "seed \(seed): prefix before \(k) of \(input)")
            }
        }
    }
}
